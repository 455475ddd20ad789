# %%
import os

if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:  # quiet C++ logs; set before TensorFlow is imported
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

# %% tags=["parameters"]
runs_dir = None  # holds <profile>/<run>/ directories; None: $VAE_RUNS_DIR, else runs
profile = "smoke"
report_dir = None  # results.csv and figures/*.png go here; None: $VAE_REPORT_DIR, else report

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import HTML, Markdown, display

from vae_lib.config import (PROFILE_DESCRIPTIONS, PROFILES, default_report_dir, default_runs_dir,
                            make_config)
from vae_lib.datasets import DATASETS
from vae_lib.experiment import load_run
from vae_lib.plots import image_grid, ll_histogram
from vae_lib.priors import PRIORS
from vae_lib.provenance import hardware_label
from vae_lib.results import REFERENCE_SOURCE, collect_runs, summarize, table1_html, write_results_csv

runs_dir = runs_dir or default_runs_dir()
report_dir = report_dir or default_report_dir()
root = Path(runs_dir) / profile
figures = Path(report_dir) / "figures"
figures.mkdir(parents=True, exist_ok=True)
rows = collect_runs(root)
write_results_csv(rows, Path(report_dir) / "results.csv")
complete = [r for r in rows if r["status"] == "complete"]
grid_k = make_config("static_mnist", "vampprior", profile).components
settings = PROFILES[profile]
hardware = sorted({hardware_label(r["metrics"]["provenance"]["hardware"]) for r in complete})
commits = sorted({(r["git_commit"] or "unknown")[:10] for r in complete})
seconds = sum(r["metrics"]["train_seconds"] + r["metrics"]["eval_seconds"] for r in complete)


def save(fig, name):
    fig.savefig(figures / f"{name}.png", dpi=110, bbox_inches="tight")
    plt.show()


budget = (f"profile **{profile}** ({PROFILE_DESCRIPTIONS[profile]}): up to {settings['epochs']} epochs, "
          f"K={grid_k}, S={settings['eval_samples']} importance samples per test image"
          + (f", at most {settings['max_train']} training and {settings['max_test']} test images "
             "(a fixed-seed random subset of each split)"
             if settings.get("max_train") else ", full datasets")
          + f"; run on {', '.join(hardware) or 'unknown hardware'}")
display(Markdown(f"""# VAE with a VampPrior: results

Reproduction of Tomczak & Welling, *VAE with a VampPrior* (AISTATS 2018) with `vae_lib`.
Every number below is read from the run directories under `{root}`; each run records its
configuration, data checksums, package versions and git commit in its `metrics.json`.

**Budget:** {budget}. {len(complete)} of {len(rows)} runs complete, {seconds / 60:.1f} min of
training and evaluation in all; code at commit(s) {', '.join(commits) or 'unknown'}.
{'**This is a reduced budget: the numbers are not comparable with the paper.**' if profile != 'paper' else ''}
"""))

# %% [markdown]
# ## Table 1: test log-likelihood (nats, higher is better)

# %%
display(HTML(table1_html(rows, DATASETS, PRIORS, grid_k)))
display(Markdown(
    f"Ours: mean over the test images &plusmn; its standard error (or mean &plusmn; std across "
    f"seeds when several seeds ran), {budget}. Reference: {REFERENCE_SOURCE}; "
    f"'paper' is the paper's own number (S=5000). *missing* = not run; *failed* = see the run's "
    f"`failure.json` and executed notebook."))
failed = [r for r in rows if r["status"] == "failed"]
for r in failed:
    print(f"FAILED {r['dataset']}/{r['prior']} K={r['components']}: {r['error']}: "
          f"{(r.get('message') or '').strip().splitlines()[-1:]}")

# %% [markdown]
# ## Test log-likelihood and training time against the number of pseudo-inputs K
# VampPrior on static MNIST. More pseudo-inputs make a richer prior, and cost more per step:
# every step encodes all K pseudo-inputs.

# %%
sweep = sorted((r for r in complete if r["dataset"] == "static_mnist" and r["prior"] == "vampprior"),
               key=lambda r: r["components"])
if sweep:
    ks = sorted({r["components"] for r in sweep})
    stats = [summarize(rows, "static_mnist", "vampprior", k) for k in ks]
    per_epoch = [np.mean([r["seconds_per_epoch"] for r in sweep if r["components"] == k]) for k in ks]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    axes[0].errorbar(ks, [s["mean"] for s in stats], yerr=[s["err"] for s in stats], marker="o", capsize=3)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("number of pseudo-inputs K")
    axes[0].set_ylabel("test log-likelihood (nats)")
    axes[0].set_title("static MNIST, VampPrior: test LL vs K")
    axes[1].plot(ks, per_epoch, marker="o")
    axes[1].set_xlabel("number of pseudo-inputs K")
    axes[1].set_ylabel("seconds per epoch")
    axes[1].set_title(f"training time vs K ({sweep[0]['n_train']} images/epoch)")
    axes[1].set_ylim(bottom=0)
    fig.suptitle(budget.replace("**", ""), fontsize=8, y=-0.02)
    save(fig, "ll_and_time_vs_K")
else:
    print("No complete VampPrior runs on static_mnist: the K sweep is missing.")

# %% [markdown]
# ## Per-image test log-likelihood
# Histograms over the test images, one line per prior (the runs of the Table 1 grid).

# %%
def grid_runs(dataset):
    return {r["prior"]: r for r in complete if r["dataset"] == dataset and r["components"] == grid_k
            and r["seed"] == min(x["seed"] for x in complete)}


present = [d for d in DATASETS if grid_runs(d)]
if present:
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.4), squeeze=False)
    for ax, dataset in zip(axes[0], present):
        runs = grid_runs(dataset)
        values = {p: np.load(Path(runs[p]["run_dir"]) / "test_ll.npy") for p in PRIORS if p in runs}
        ll_histogram(values, ax=ax, title=dataset)
    fig.suptitle(budget.replace("**", ""), fontsize=8, y=-0.04)
    fig.tight_layout()
    save(fig, "test_ll_histograms")

# %% [markdown]
# ## Pseudo-inputs
# The first pseudo-inputs of the VampPrior (learned) and of the VampPrior-data (training images,
# held fixed) on each dataset.

# %%
def images_of(run_row):
    return load_run(run_row["run_dir"], with_model=False).images


for dataset in present:
    runs = grid_runs(dataset)
    with_pseudo = [p for p in ("vampprior", "vampprior_data") if p in runs]
    if not with_pseudo:
        continue
    fig, axes = plt.subplots(1, len(with_pseudo), figsize=(5.5 * len(with_pseudo), 3.2), squeeze=False)
    for ax, prior in zip(axes[0], with_pseudo):
        imgs = images_of(runs[prior])
        image_grid(imgs["pseudo_inputs"][:40], tuple(imgs["image_shape"]), ncols=10, ax=ax,
                   title=f"{dataset} / {prior}: pseudo-inputs")
    save(fig, f"pseudo_inputs_{dataset}")

# %% [markdown]
# ## Reconstructions and samples
# For each dataset: test images, and per prior their reconstructions and samples from the prior
# (decoder means).

# %%
for dataset in present:
    runs = grid_runs(dataset)
    priors_here = [p for p in PRIORS if p in runs]
    fig, axes = plt.subplots(2, len(priors_here) + 1, figsize=(3.2 * (len(priors_here) + 1), 6.0),
                             squeeze=False)
    first = images_of(runs[priors_here[0]])
    shape = tuple(first["image_shape"])
    image_grid(first["test_images"][:25], shape, ncols=5, ax=axes[0, 0], title="test images")
    axes[1, 0].set_axis_off()
    for j, prior in enumerate(priors_here, 1):
        imgs = images_of(runs[prior])
        image_grid(imgs["reconstructions"][:25], shape, ncols=5, ax=axes[0, j], title=f"{prior}: reconstructions")
        image_grid(imgs["samples"][:25], shape, ncols=5, ax=axes[1, j], title=f"{prior}: samples")
    fig.suptitle(dataset)
    save(fig, f"reconstructions_samples_{dataset}")

# %% [markdown]
# ## Runs and their provenance
# One row per run directory; `results.csv` beside this report holds the same data.

# %%
header = ("dataset", "prior", "K", "seed", "status", "epochs", "S", "train images", "test LL",
          "s/epoch", "train s", "eval s", "commit")
lines = []
for r in rows:
    m = r.get("metrics") or {}
    lines.append((r["dataset"], r["prior"], r["components"], r["seed"], r["status"],
                  m.get("epochs_trained", ""), r["eval_samples"], m.get("n_train", ""),
                  f"{m['test_ll']:.2f}" if m else "", f"{m['seconds_per_epoch']:.2f}" if m else "",
                  f"{m['train_seconds']:.0f}" if m else "", f"{m['eval_seconds']:.0f}" if m else "",
                  (r.get("git_commit") or "")[:10]))
display(HTML("<table><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"
             + "".join("<tr>" + "".join(f"<td>{v}</td>" for v in line) + "</tr>" for line in lines)
             + "</table>"))
if complete:
    prov = complete[0]["metrics"]["provenance"]
    print("packages:", ", ".join(f"{k} {v}" for k, v in prov["packages"].items()))
    print("python", prov["python"], "on", prov["hardware"]["platform"])
