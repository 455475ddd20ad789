# %% tags=["parameters"]
profile = "smoke"
report_dir = None  # holds runs/ (the records); results.csv and figures/ go here. None: $VAE_REPORT_DIR (else report)/<profile>

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import HTML, Markdown, display

from vae_lib.datasets import DATASETS
from vae_lib.pipeline.cells import REPO
from vae_lib.pipeline.config import (K_SWEEP_SETTINGS, K_SWEEPS, PROFILE_DESCRIPTIONS, PROFILES, default_report_dir,
                                     make_config)
from vae_lib.pipeline.convergence import monte_carlo_check, past_protocol, read_convergence, run_label, scope_text
from vae_lib.pipeline.figures import convergence_curves
from vae_lib.pipeline.io import read_json
from vae_lib.pipeline.plans import plan
from vae_lib.pipeline.provenance import hardware_label
from vae_lib.pipeline.records import read_images, read_test_ll, training_seconds
from vae_lib.pipeline.references import PAPER_SOURCE, REFERENCE_SOURCE
from vae_lib.pipeline.registry import MODELS, PRIORS
from vae_lib.pipeline.results import (NEARLY_UNIFORM, NOT_RECORDED, collect_rows, grid_components, model_differences, paired_difference, select,
                                      nearly_uniform, sample_spread, spread_text, summarize, sweep_variant,
                                      test_ll_of, write_results_csv)
from vae_lib.pipeline.rundir import changes_text, failure_summary, variant_of
from vae_lib.pipeline.tables import (convergence_table_html, model_paired_table_html, paired_table_html,
                                     table1_html, table1_markdown)
from vae_lib.pipeline.verdicts import Evidence, findings, findings_markdown
from vae_lib.plots import image_grid, ll_histogram
from vae_lib.progress import duration

report_dir = Path(report_dir or Path(default_report_dir()) / profile)
figures = report_dir / "figures"
figures.mkdir(parents=True, exist_ok=True)
rows = collect_rows(report_dir / "runs", relative_to=report_dir)
write_results_csv(rows, report_dir / "results.csv")
complete = select(rows)
K = grid_components(profile)
settings = PROFILES[profile]
hardware = sorted({hardware_label(r["metrics"]["provenance"]["hardware"]) for r in complete})
commits = sorted({(r["git_commit"] or "unknown")[:10] for r in complete})
unrecorded = sum(r["trained_by"] == NOT_RECORDED for r in complete)


train_s = sum(training_seconds(r["metrics"]) for r in complete)
eval_s = sum(r["metrics"]["eval_seconds"] for r in complete)
datasets = list(DATASETS)
PRIOR_COLORS = {p: f"C{i}" for i, p in enumerate(PRIORS)}  # one colour a prior in every figure
# the models this profile's plan runs, and any other that has records
plan_cells = plan(profile, runs_dir=".", report_dir=".")
planned = {}  # Table 1's cells in the plan (the profile's own settings) -> their seeds
for c in plan_cells:
    if c.purpose != "k_sweep" and not variant_of(c.config):
        planned.setdefault((c.config.dataset, c.config.model, c.config.prior), set()).add(c.config.seed)
planned_done = {c.record_dir.name for c in plan_cells} & {Path(r["run"]).name for r in complete}
models = [m for m in MODELS if m in {key[1] for key in planned} or select(rows, status=None, model=m)]
outside = len(complete) - len(planned_done)  # records of cells the plan does not have
unfinished = len(rows) - len(complete)  # failed or incomplete records
outside_text = ((f"; {outside} further record(s) outside the plan" if outside else "")
                + (f"; {unfinished} record(s) failed or incomplete (Table 1 says which)" if unfinished else ""))
train_wall_s = sum(r["metrics"]["train_seconds"] for r in complete)


def save(fig, name, width=None):
    """Save a figure beside the report and show it by link (the HTML embeds no second copy)."""
    fig.savefig(figures / f"{name}.png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    display(HTML(f'<img src="figures/{name}.png"' + (f' width="{width}"' if width else "") + ">"))


budget = (f"profile **{profile}** ({PROFILE_DESCRIPTIONS[profile]}): up to {settings['epochs']} epochs"
          + (f" and at least {settings['min_steps']} optimizer steps (more epochs on small datasets)"
             if settings.get("min_steps") else "") + ", "
          f"KL warm-up {settings['warmup_epochs']}, early stopping after {settings['patience']} + 1 epochs "
          f"without a better validation loss, K={K}, S={settings['eval_samples']} importance samples "
          f"per test image"
          + (f", at most {settings['max_train']} training and {settings['max_test']} test images "
             "(a fixed-seed random subset of each split)" if settings.get("max_train") else ", full datasets")
          + f"; run on {', '.join(hardware) or 'no hardware yet'}")
steps = f" (at least {settings['min_steps']} steps)" if settings.get("min_steps") else ""
short_budget = (f"{profile} profile: up to {settings['epochs']} epochs{steps}, warm-up {settings['warmup_epochs']}, "
                f"patience {settings['patience']}, K={K}, S={settings['eval_samples']}, "
                + (f"subsets of {settings['max_train']}/{settings['max_test']} train/test images"
                   if settings.get("max_train") else "full datasets")
                + f"; {', '.join(hardware) or 'no hardware yet'}")
display(Markdown(f"""# VAE with a VampPrior: results ({profile} profile)

Reproduction of Tomczak & Welling, *VAE with a VampPrior* (AISTATS 2018) with `vae_lib`.
Every number below is read from the run records in `runs/` beside this page, except three kinds,
each said where it appears: the convergence check's rescored estimates (`is_convergence.json`
beside this page), the K sweep's timing panel (`benchmarks/k_sweep_timing.json`), and other work's
numbers (the reference report, the paper, and public reruns of the paper's code, each with its
source). Each record holds its configuration, history, per-image test log-likelihoods, the executed
training and evaluation notebooks and `metrics.json` (data checksums, package versions, the commits
that trained and evaluated it, hardware).

**Budget:** {budget}.

**Progress:** {len(planned_done)} of the {len(plan_cells)} cells of the {profile} profile's plan are
recorded{f", {len(plan_cells) - len(planned_done)} still to run" if len(planned_done) < len(plan_cells) else ""}{outside_text}.
Compute so far: {duration(train_s)} of training (epochs x median epoch time; the records'
wall-clock sum is {duration(train_wall_s)}) and {duration(eval_s)} of evaluation; evaluated at commit(s)
{', '.join(commits) or 'none yet'}{f"; {unrecorded} of the {len(complete)} records were trained before the code of each training segment was recorded (their start commit not recorded; a run that resumed across commits is named only by the commit that evaluated it)" if unrecorded else ""}.
{'**This is a reduced budget: its numbers are not comparable with the paper.**' if profile != 'paper' else ''}
"""))

# %% [markdown]
# ## Table 1: test log-likelihood (nats, higher is better)

# %%
gpu_cells = {(c.config.dataset, c.config.model, c.config.prior) for c in plan_cells if c.needs_gpu}
display(HTML(table1_html(rows, datasets, list(PRIORS), models, planned, gpu_cells)))
(report_dir / "table1.md").write_text(table1_markdown(rows, datasets, list(PRIORS), models, planned, gpu_cells) + "\n")
display(Markdown(
    f"Ours: mean over the test images &plusmn; its standard error for one seed, or the mean "
    f"&plusmn; the standard deviation across seeds (their number is given, and how many the plan "
    f"has while some are still to run); {short_budget}. "
    f"Initialisation: Glorot-uniform weights, zero biases (ours; the paper-code variant is compared "
    f"below). Reference: {REFERENCE_SOURCE}. 'paper': {PAPER_SOURCE}. VampPrior-data: K random "
    f"training images as fixed pseudo-inputs, as in the reference report. The reference report has "
    f"no numbers for dynamic MNIST. *not run* = no record yet; "
    f"*failed* = see the record's `failure.json`; *record incomplete* = its copy was cut short "
    f"(the next `vampprior report` completes it); "
    f"*not planned* = not in the {profile} profile's plan"
    + (f"; *needs a GPU* = the convolutional models at the paper's protocol, days of a 2-core CPU a cell "
       f"(`vampprior status` estimates them), not run yet" if gpu_cells else "") + "."))
for r in select(rows, status="failed"):
    print(f"FAILED {r['run']}: {failure_summary(r)}")

# %% [markdown]
# ## Paired differences to the standard prior
# Every prior is scored on the same test images, so the difference that matters is the per-image
# one: each prior's test log-likelihood minus the standard prior's, image by image and seed by
# seed. Positive: better than the standard prior.

# %%
display(HTML(paired_table_html(rows, datasets, list(PRIORS), models=models)))
display(Markdown(f"Mean over seeds of each seed's mean per-image difference &plusmn; the standard "
                 f"deviation of that mean across seeds (several seeds), or its paired standard error "
                 f"over the test images (one seed); {short_budget}."))

# %% [markdown]
# ## The hierarchical VAE against the one-level VAE
# The paper's two-level HVAE (prior on its top latent) and the VAE, with the same prior, are scored
# on the same test images; the paired difference HVAE &minus; VAE is per image and seed. Positive:
# the HVAE is better.

# %%
hvae_vs_vae = model_differences(rows, datasets, list(PRIORS), "hvae", "vae")
if hvae_vs_vae:
    display(HTML(model_paired_table_html(rows, datasets, list(PRIORS), "hvae", "vae")))
    display(Markdown(f"Test LL: mean &plusmn; s.e. over images (one seed) or std across seeds; the "
                     f"difference as in the table above; {short_budget}."))
else:
    display(Markdown("No dataset and prior has both an HVAE and a VAE run yet."))

# %% [markdown]
# ## How precise is each estimate?
# Two errors are at play. The *sampling error over test images* (the &plusmn; of Table 1 for one
# seed) says how much another test set would move the mean. The *Monte Carlo error* of importance
# sampling says how much another set of S samples would move it: from each image's effective
# sample size ESS = (sum w)^2 / sum w^2, its estimate has a standard error of about
# sqrt(1/ESS - 1/S) nats (delta method), which understates it where the weights are heavy-tailed.
# So it is also *measured*: the convergence check below scores 200 test images of some runs again at
# the same S with independent samples, and each image's two estimates differ by twice the variance
# of one; that measured error is shown beside the delta method's, and scales the others. Either is
# the spread of the estimate at this S, not its bias: the estimate is biased low, by an amount no
# column here shows; the next section measures how much of it more samples recover (a lower bound
# on the bias), which can be many times the Monte Carlo s.e.

# %%
TINY_ESS = 10  # below this median ESS the delta-method error says little (see the convergence check)
S = settings["eval_samples"]
conv = read_convergence(report_dir / "is_convergence.json")
by_run = {r["run_dir"].name: r for r in complete}
mc_checks = {}  # run name -> MonteCarloCheck, where the convergence check rescored its images at S
for e in conv:
    if e["run"] in by_run and (rec := read_test_ll(by_run[e["run"]]["run_dir"])) is not None:
        if (check := monte_carlo_check(e, *rec, S)) is not None:
            mc_checks[e["run"]] = check
worst_ratio = {}  # dataset -> the largest measured / delta-method ratio among its checked runs
for check in mc_checks.values():
    worst_ratio[check.entry["dataset"]] = max(worst_ratio.get(check.entry["dataset"], 0.0), check.ratio)


def measured_mc_text(r):
    m, check = r["metrics"], mc_checks.get(r["run_dir"].name)
    if check is not None:
        return f"{check.mean_stderr(m['n_test']):.3f}"
    ratio = worst_ratio.get(r["dataset"])
    return "&ndash;" if ratio is None else f"({m['test_ll_mc_stderr'] * ratio:.3f})"


lines = []
for r in sorted(complete, key=lambda r: (r["dataset"], r["model"], r["prior"], r["variant"], r["components"], r["seed"])):
    m = r["metrics"]
    dagger = "&dagger;" if m["test_ess_median"] < TINY_ESS else ""
    lines.append(f"<tr><td>{r['dataset']}</td><td>{r['model']}</td><td>{r['prior']}</td>"
                 f"<td>{changes_text(r['config']) or '&ndash;'}</td><td>{r['components']}</td><td>{r['seed']}</td>"
                 f"<td>{m['test_ll']:.2f}</td><td>{m['test_ll_stderr']:.2f}</td>"
                 f"<td>{m['test_ll_mc_stderr']:.3f}{dagger}</td><td>{measured_mc_text(r)}</td><td>{m['test_ess_median']:.1f}</td>"
                 f"<td>{m['test_elbo']:.2f}</td></tr>")
display(HTML("<table><tr><th>dataset</th><th>model</th><th>prior</th><th>settings changed</th><th>K</th>"
             "<th>seed</th><th>test LL</th><th>s.e. over images</th><th>Monte Carlo s.e. (delta method)</th>"
             "<th>Monte Carlo s.e. (measured)</th>"
             "<th>median ESS</th><th>test ELBO</th></tr>" + "".join(lines) + "</table>"))
if any(r["metrics"]["test_ess_median"] < TINY_ESS for r in complete):
    display(Markdown(f"&dagger; median ESS below {TINY_ESS}: the delta method's s.e. there is a floor, "
                     f"not an error bar (the estimate can still rise by more; see the next section)."))
if mc_checks:
    ratios = {}
    for check in mc_checks.values():
        ratios.setdefault(check.entry["dataset"], []).append(check)
    parts = [f"{dataset}: {min(c.empirical for c in cs):.2f}&ndash;{max(c.empirical for c in cs):.2f} nats per image "
             f"against {min(c.predicted for c in cs):.2f}&ndash;{max(c.predicted for c in cs):.2f} from the delta method "
             f"({min(c.ratio for c in cs):.1f}&ndash;{max(c.ratio for c in cs):.1f}x, {len(cs)} run(s))"
             for dataset, cs in sorted(ratios.items())]
    display(Markdown(
        f"**Measured Monte Carlo error.** On the {len(mc_checks)} runs the convergence check rescored at S={S} "
        f"with independent samples ({scope_text([c.entry for c in mc_checks.values()])}), the per-image error is "
        + "; ".join(parts)
        + ". *Measured* is that per-image error over the square root of the run's test images; in parentheses, "
        "for a run not rescored, its delta-method s.e. times the largest ratio measured on its dataset; "
        "&ndash;: no run of the dataset was rescored. Paired differences and the s.e. over images are not "
        "affected: each image's Monte Carlo noise is already in the spread of its scores."))

# %% [markdown]
# ### Has the estimate converged at the protocol's S?
# The estimate is a lower bound in expectation that rises towards log p(x) as S grows, slowly
# where the ESS is small. `python -m vae_lib.pipeline.convergence RUN_DIR ...` scores the same 200 random
# test images of trained runs again with S from 500 to 50000 (each S a separate evaluation) into
# `is_convergence.json` beside this report. Where the estimate still rises, the protocol's number
# is below the model's log-likelihood; for comparing priors what matters is whether their paired
# difference moves with S.

# %%
past_s = past_protocol(conv, S)  # the runs scored at S and beyond
rises = {}
for r in past_s:
    rises.setdefault(r.entry["dataset"], []).append(r.rise)
if conv:
    fig = convergence_curves(conv, S, run_label, color=lambda e: PRIOR_COLORS.get(e["prior"]))
    fig.suptitle(f"{short_budget}; the dotted line: S={S}", fontsize=8, y=-0.02)
    save(fig, "is_convergence")
if rises:
    display(HTML(convergence_table_html(conv, S)))
    display(Markdown("Mean over the same test images; &plusmn; the standard error of the paired "
                     f"difference over those images. From S={S} to the largest S the estimate rose by "
                     + "; ".join((f"{min(r):.2f} to {max(r):.2f}" if len(r) > 1 else f"{r[0]:.2f}")
                                 + f" nats on {d}" for d, r in sorted(rises.items()))
                     + f" ({scope_text([r.entry for r in past_s])}; machine as above)."))
elif conv:
    print(f"is_convergence.json has no run scored at S={S} and above; the figure only.")
else:
    print("No convergence check in this report (is_convergence.json).")

# %% [markdown]
# ## The small datasets: how much of the ranking is the paper code's?
# The paper finds the VampPrior ahead of the standard prior on every dataset, and so does the
# reference report on Caltech 101 and Frey Faces (Table 1). Whether it is ahead here may depend on
# how the baseline is trained, so the departures from the paper's code that can move a number
# (README) are run one at a time, with the same seeds: its initialisation (weights ~ N(0,
# 2/fan_in), PyTorch's default biases, `--weight-init he`), its optimizer (AdamNormGrad,
# `--optimizer adamnormgrad`) and its KL estimator for the standard prior (single-sample Monte
# Carlo, `--kl-estimator monte_carlo`; the VampPrior's is Monte Carlo already, so its column is
# ours). The difference "VampPrior - standard" is paired by image and seed.

# %%
def code_variant(**setting):
    return variant_of(make_config("frey_faces", "standard", profile, **setting))


HE, ANG, MC = code_variant(weight_init="he"), code_variant(optimizer="adamnormgrad"), code_variant(kl_estimator="monte_carlo")
CODE_SETTINGS = {"": "ours (Glorot, Adam, closed-form KL)", HE: "the paper code's initialisation",
                 ANG: "the paper code's optimizer", MC: "the paper code's KL estimator"}
LEARNED = variant_of(make_config("frey_faces", "vampprior_data", profile, trainable_pseudo_inputs=True))
code_diffs = {}  # (dataset, variant) -> VampPrior - standard, paired (for "What we found")
if any(r["variant"] in (HE, ANG, MC) and r["model"] == "vae" for r in complete):
    out, shown, missing = [], [], set()
    for dataset in ("caltech101_silhouettes", "frey_faces"):
        for variant, label in CODE_SETTINGS.items():
            sel = dict(dataset=dataset, model="vae", components=K)
            std_rows = select(rows, prior="standard", variant=variant, **sel)
            vamp_rows = select(rows, prior="vampprior", variant="" if variant == MC else variant, **sel)
            if not std_rows and (variant == MC or not vamp_rows):  # none of this setting's own runs
                missing.add(label)
                continue
            std, vamp = summarize(std_rows), summarize(vamp_rows)
            d = code_diffs[dataset, variant] = paired_difference(vamp_rows, std_rows)
            cell = lambda s: "&ndash;" if s is None else f"{s.mean:.2f} &plusmn; {s.err:.2f} ({s.n_seeds})"
            shown += [std, vamp]
            out.append(f"<tr><td>{dataset}</td><td>{label}</td><td>{cell(std)}</td>"
                       f"<td>{'as ours' if variant == MC else cell(vamp)}</td>"
                       + ("<td>&ndash;</td>" if d is None else
                          f"<td>{d.mean:+.2f} &plusmn; {d.err:.2f} ({len(d.per_seed)} seeds, {d.err_kind})</td>")
                       + "</tr>")
    display(HTML("<table><tr><th>dataset</th><th>settings</th><th>standard</th><th>VampPrior</th>"
                 "<th>VampPrior &minus; standard (paired)</th></tr>" + "".join(out) + "</table>"))
    display(Markdown(f"mean &plusmn; {spread_text(shown)} (number of seeds); {short_budget}."
                     + (f" No runs yet of {', '.join(sorted(missing))} on one of the datasets or both."
                        if missing else "")))
else:
    print("No runs with the paper code's settings in these records.")

# %% [markdown]
# ## VampPrior-data: fixed pseudo-inputs or learned from there
# `vampprior_data` keeps K random training images as its pseudo-inputs (the reference report's
# variant, in Table 1). The paper's code (`--use_training_data_init`) starts from K training images
# plus N(0, 0.01^2) noise and keeps learning them (`--trainable-pseudo-inputs` here).

# %%
learned = [r for r in complete if r["prior"] == "vampprior_data" and r["variant"] == LEARNED]
learned_diffs = {}  # dataset -> learned - fixed, paired (for "What we found")
if learned:
    out, shown = [], []
    for dataset in sorted({r["dataset"] for r in learned}):
        sel = dict(dataset=dataset, model="vae", components=K, prior="vampprior_data")
        fixed_s, learned_s = summarize(select(rows, variant="", **sel)), summarize(select(rows, variant=LEARNED, **sel))
        learned_diffs[dataset] = paired_difference(select(rows, variant=LEARNED, **sel), select(rows, variant="", **sel))
        cell = lambda s: "&ndash;" if s is None else f"{s.mean:.2f} &plusmn; {s.err:.2f} ({s.n_seeds})"
        shown += [fixed_s, learned_s]
        out.append(f"<tr><td>{dataset}</td><td>{cell(fixed_s)}</td><td>{cell(learned_s)}</td></tr>")
    display(HTML("<table><tr><th>dataset</th><th>fixed (reference report)</th><th>learned (paper's code)</th></tr>"
                 + "".join(out) + "</table>"))
    display(Markdown(f"mean &plusmn; {spread_text(shown)} (number of seeds); {short_budget}."))
else:
    print("No runs with learned data-initialised pseudo-inputs in these records.")

# %% [markdown]
# ## Test log-likelihood and training time against the number of pseudo-inputs K
# VampPrior on static MNIST. More pseudo-inputs make a richer prior, and cost more per step:
# every step encodes all K pseudo-inputs.

# %%
sweep = sorted(select(rows, dataset="static_mnist", model="vae", prior="vampprior",
                      variant=sweep_variant(profile)), key=lambda r: r["components"])
sweep_settings = {**settings, **K_SWEEP_SETTINGS[profile]}
K_TIMING = REPO / "benchmarks" / "k_sweep_timing.json"  # benchmarks/bench.py --only k_sweep
if sweep:
    ks = sorted({r["components"] for r in sweep})
    to_run = [k for k in K_SWEEPS[profile] if k not in ks]
    stats = [summarize([r for r in sweep if r["components"] == k]) for k in ks]
    per_epoch = [np.mean([r["seconds_per_epoch"] for r in sweep if r["components"] == k]) for k in ks]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharex=True)  # one K axis for both panels
    axes[0].errorbar(ks, [s.mean for s in stats], yerr=[s.err for s in stats], marker="o", capsize=3,
                     label=f"mean ± {spread_text(stats)}")
    # each step to the next K, paired on the same test images and seeds: far better resolved than
    # the error bars (which include the spread of the images themselves) suggest
    steps = [paired_difference([r for r in sweep if r["components"] == b], [r for r in sweep if r["components"] == a])
             for a, b in zip(ks, ks[1:])]
    for a, b, d, sa, sb in zip(ks, ks[1:], steps, stats, stats[1:]):
        if d is not None:
            axes[0].annotate(f"{d.mean:+.2f}\n±{d.err:.2f}", (np.sqrt(a * b), (sa.mean + sb.mean) / 2),
                             fontsize=6, ha="center", va="top", xytext=(0, -6), textcoords="offset points")
    axes[0].legend(fontsize=7, title="labels: paired step to the next K ± its error", title_fontsize=6)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("number of pseudo-inputs K")
    axes[0].set_ylabel("test log-likelihood (nats)")
    axes[0].set_title("static MNIST, VampPrior: test LL vs K")
    threads = sorted({r["metrics"].get("threads") or 0 for r in sweep})
    threads_text = "/".join(str(t) if t else "?" for t in threads)
    # The sweep's runs are made over days, on machines whose CPUs differ and beside other runs; a
    # benchmark that times every K in one run (benchmarks/bench.py --only k_sweep) compares them.
    bench = read_json(K_TIMING) if profile == "paper" and K_TIMING.is_file() else None
    if bench:
        b_hw = hardware_label(bench["provenance"]["hardware"])
        b_git = bench["provenance"]["git"]
        axes[1].plot([r["components"] for r in bench["rows"]], [r["seconds_per_epoch"] for r in bench["rows"]],
                     marker="s", label=f"benchmark, one run: {bench['threads']} threads, {b_hw},\n"
                                       f"{bench['provenance']['created'][:10]}, code {(b_git['commit'] or '?')[:7]}"
                                       + (" modified" if b_git.get("modified") else ""))
    axes[1].plot(ks, per_epoch, marker="o", linestyle="none" if bench else "-",
                 label=f"each sweep run's own epochs ({threads_text} thread(s))")
    if bench:
        axes[1].legend(fontsize=6, loc="upper left")
    axes[1].set_xscale("log")  # both panels: K on the same log axis
    axes[1].set_ylim(bottom=0)
    axes[1].set_xlabel("number of pseudo-inputs K")
    axes[1].set_ylabel("seconds per epoch (median)")
    axes[1].set_title(f"training time vs K ({sweep[0]['n_train']} images/epoch)")
    fig.suptitle(f"{sweep_settings['epochs']} epochs each, KL warm-up {sweep_settings['warmup_epochs']} "
                 f"epochs, S={sweep_settings['eval_samples']}; {', '.join(hardware)}, "
                 f"{threads_text} TensorFlow thread(s) per run", fontsize=8, y=-0.02)
    fig.tight_layout()
    save(fig, "ll_and_time_vs_K")
    # how much epoch times of one cell's settings (seeds apart) vary between records: machines and loads
    by_settings = {}
    for r in complete:
        if r["seconds_per_epoch"] > 2:  # epochs of a second or less are noise
            by_settings.setdefault((r["dataset"], r["model"], r["prior"], r["components"], r["variant"],
                                    r["metrics"].get("threads")), []).append(r["seconds_per_epoch"])
    spread = max([max(t) / min(t) for t in by_settings.values() if len(t) > 1], default=1.0)
    capped = [r for r in sweep if not r["metrics"]["stopped_early"]]
    best = sorted(r["metrics"]["best_epoch"] for r in capped)
    capped_text = (f" {len(capped)} of {len(sweep)} runs trained to the {sweep_settings['epochs']}-epoch cap "
                   f"without stopping early (best epochs {best[0]} to {best[-1]}): the curve compares K "
                   f"at a fixed budget" + (", as the reference report's figure does" if profile == "paper" else "")
                   + ", not converged models." if capped else "")
    step_text = "; ".join(f"K={a} to {b}: {d.mean:+.2f} &plusmn; {d.err:.2f} ({d.err_kind})"
                          for a, b, d in zip(ks, ks[1:], steps) if d is not None)
    display(Markdown(f"Error bars: {spread_text(stats)}, which includes how much the test images themselves "
                     f"vary. The labels are the paired steps between neighbouring K (same images and seeds), "
                     f"which resolve much smaller differences: {step_text}. "
                     + " ".join(f"K={k}: {s.mean:.2f}, {t:.2f} s/epoch." for k, s, t in zip(ks, stats, per_epoch))
                     + f" Times are each run's own epochs with {threads_text} TensorFlow thread(s). They "
                       f"depend on the machine and on what else ran on it (in these records the same "
                       f"settings' epochs took up to {spread:.1f} times as long in one run as in another), "
                       f"so they compare only roughly"
                     + (f"; the benchmark line times every K in one run on one machine (median of "
                        f"{bench['epochs_timed']} epochs each, peak matmul {bench['peak_gflops']:.0f} "
                        f"GFLOP/s, code {bench['provenance']['git']['commit'][:10]}"
                        + (", from a modified checkout" if bench["provenance"]["git"].get("modified") else "")
                        + "): read the cost of K from it." if bench else ".")
                     + capped_text
                     + (f" Still to run: K = {', '.join(map(str, to_run))}." if to_run else "")))
else:
    display(Markdown(f"No complete K-sweep run yet, so no figure: the {profile} profile's sweep is K in "
                     f"{', '.join(map(str, K_SWEEPS[profile]))}, {sweep_settings['epochs']} epochs each "
                     f"(KL warm-up {sweep_settings['warmup_epochs']}), S={sweep_settings['eval_samples']}."))

# %% [markdown]
# ## Per-image test log-likelihood
# Histograms over the test images, one line per prior (the Table 1 runs, first seed).

# %%
def grid_runs(dataset, model="vae"):
    done = select(rows, dataset=dataset, model=model, profile=profile, own_cell=True)
    first = min((r["seed"] for r in done), default=None)
    return {r["prior"]: r for r in done if r["seed"] == first}


present = [d for d in datasets if grid_runs(d)]
if present:
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], present):
        runs = grid_runs(dataset)
        ll_histogram({p: test_ll_of(runs[p]) for p in PRIORS if p in runs}, ax=ax, title=dataset,
                     colors=PRIOR_COLORS)
    fig.suptitle(short_budget, fontsize=8, y=-0.06)
    fig.tight_layout()
    save(fig, "test_ll_histograms")

# %% [markdown]
# ## Pseudo-inputs
# The VampPrior's learned pseudo-inputs and the VampPrior-data's training images (fixed), the
# first 40 of K on each dataset, as the kept (best validation) epoch left them. Learned
# pseudo-inputs start as near-uniform noise (near black on the MNIST datasets, mid-grey elsewhere,
# as in the paper's code); one still nearly uniform is one that training has barely moved. Such
# pseudo-inputs are near-copies of one another, so their mixture components nearly coincide.

# %%
FLAT = NEARLY_UNIFORM  # a pseudo-input whose pixels spread less than this (s.d., in [0, 1]) is nearly uniform
notes, flat_counts = [], {}  # dataset -> (nearly uniform, shown) of the VampPrior's pseudo-inputs
for dataset in present:
    runs = grid_runs(dataset)
    with_pseudo = [p for p in PRIORS if PRIORS[p].has_pseudo_inputs and p in runs]
    if not with_pseudo:
        continue
    fig, axes = plt.subplots(1, len(with_pseudo), figsize=(5.5 * len(with_pseudo), 3.2), squeeze=False)
    for ax, prior in zip(axes[0], with_pseudo):
        imgs = read_images(runs[prior]["run_dir"])
        shown = imgs["pseudo_inputs"][:40]
        image_grid(shown, tuple(imgs["image_shape"]), ncols=10, ax=ax,
                   title=f"{dataset} / {prior}: pseudo-inputs")
        if prior == "vampprior":
            flat = nearly_uniform(shown, FLAT)  # read_images: [0, 1]
            flat_counts[dataset] = (flat, len(shown))
            notes.append(f"{dataset}: best epoch {runs[prior]['metrics']['best_epoch']}, {flat} of "
                         f"{len(shown)} shown still nearly uniform")
    fig.suptitle(short_budget, fontsize=8, y=0.12)
    save(fig, f"pseudo_inputs_{dataset}")
if notes:
    display(Markdown(f"VampPrior, the first seed's run of each dataset (nearly uniform: pixel s.d. below "
                     f"{FLAT}): " + "; ".join(notes) + "."))

# %% [markdown]
# ## How varied are the samples?
# A likelihood says how well a model covers the test images, not whether its samples differ from
# one another. For each prior and seed: the standard deviation of each pixel across the run's 50
# samples from the prior, averaged over the pixels (8-bit grey levels; 0 would be 50 copies of one
# image). Beside each VampPrior run, how many of its stored pseudo-inputs are still nearly uniform
# (as in *Pseudo-inputs*): a mixture whose components coincide samples near a few images.

# %%
sample_spreads = {}  # (dataset, prior) -> [(seed, spread, nearly uniform pseudo-inputs or None, stored)]
for dataset in present:
    for prior in PRIORS:
        for r in sorted(select(complete, dataset=dataset, model="vae", prior=prior, own_cell=True), key=lambda r: r["seed"]):
            imgs = read_images(r["run_dir"])
            if imgs is None or len(imgs["samples"]) < 2:
                continue
            pseudo = imgs.get("pseudo_inputs") if prior == "vampprior" else None  # learned ones only
            flat = None if pseudo is None else nearly_uniform(pseudo, FLAT)
            sample_spreads.setdefault((dataset, prior), []).append(
                (r["seed"], sample_spread(imgs["samples"]), flat, None if pseudo is None else len(pseudo)))
spread_datasets = [d for d in present if any(k[0] == d for k in sample_spreads)]
if spread_datasets:
    fig, axes = plt.subplots(1, len(spread_datasets), figsize=(3.3 * len(spread_datasets), 3.2), squeeze=False)
    for ax, dataset in zip(axes[0], spread_datasets):
        priors_here = [p for p in PRIORS if (dataset, p) in sample_spreads]
        for i, prior in enumerate(priors_here):
            points = sample_spreads[dataset, prior]
            values = [v for _, v, _, _ in points]
            ax.bar(i, np.mean(values), color=PRIOR_COLORS[prior], alpha=0.4)
            ax.plot([i] * len(values), values, "o", color=PRIOR_COLORS[prior], markersize=4)
            flats = [f"{f}/{n}" for _, _, f, n in points if f is not None]
            if flats:
                ax.annotate("flat:\n" + "\n".join(flats), (i, max(values)), fontsize=6, ha="center",
                            xytext=(0, 4), textcoords="offset points")
        ax.set_xticks(range(len(priors_here)), priors_here, rotation=30, fontsize=7)
        ax.set_ylabel("pixel s.d. across samples (grey levels)", fontsize=7)
        ax.set_title(dataset, fontsize=9)
        ax.margins(y=0.25)
    fig.suptitle(f"VAE, one point per seed, the bar their mean; 'flat': nearly uniform pseudo-inputs of those stored; "
                 f"{short_budget}", fontsize=7, y=-0.02)
    fig.tight_layout()
    save(fig, "sample_spread")
else:
    print("No VAE runs with samples in these records.")

# %% [markdown]
# ## Reconstructions and samples
# For each dataset: 25 test images in a fixed-seed random order (not file order: some test files
# are sorted by class), and per prior their reconstructions and samples from the prior (decoder
# means).

# %%
for dataset in present:
    runs = grid_runs(dataset)
    priors_here = [p for p in PRIORS if p in runs]
    fig, axes = plt.subplots(2, len(priors_here) + 1, figsize=(3.2 * (len(priors_here) + 1), 6.0),
                             squeeze=False)
    first = read_images(runs[priors_here[0]]["run_dir"])
    shape = tuple(first["image_shape"])
    image_grid(first["test_images"][:25], shape, ncols=5, ax=axes[0, 0], title="test images")
    axes[1, 0].set_axis_off()
    for j, prior in enumerate(priors_here, 1):
        imgs = read_images(runs[prior]["run_dir"])
        image_grid(imgs["reconstructions"][:25], shape, ncols=5, ax=axes[0, j], title=f"{prior}: reconstructions")
        image_grid(imgs["samples"][:25], shape, ncols=5, ax=axes[1, j], title=f"{prior}: samples")
    fig.suptitle(f"{dataset}; {short_budget}", fontsize=8)
    save(fig, f"reconstructions_samples_{dataset}")

# %% [markdown]
# ## What we found
# Written from the numbers above each time the report is built. "Better" or "worse" means the
# paired difference's 95% interval excludes zero: a t interval over the seeds' mean differences
# (with 3 seeds, 2.48 standard deviations), or, for one seed, 1.96 times its paired standard error
# over the test images and the seed-to-seed spread in quadrature. A paired s.e. alone cannot see how
# much another seed would move a difference, so that spread is measured on the same dataset's
# several-seed differences (the root mean square of their std over seeds), or, on dynamic MNIST,
# which has none, on static MNIST's (the same digits and networks; only the binarization differs);
# a one-seed difference on a dataset with neither gets no verdict.

# %%
evidence = Evidence(rows, profile, models, datasets, list(PRIORS), planned, K, S, settings["warmup_epochs"],
                    conv=conv, past_s=past_s, rises=rises, hvae_vs_vae=hvae_vs_vae, code_diffs=code_diffs,
                    code_settings=CODE_SETTINGS, he_variant=HE, learned_diffs=learned_diffs,
                    flat_counts=flat_counts, sample_spreads=sample_spreads, needs_gpu=gpu_cells)
display(Markdown(findings_markdown(findings(evidence)) if complete else "No complete runs yet."))

# %% [markdown]
# ## Compute
# Training and evaluation time of every run, on the hardware it ran on. Training time is the number
# of epochs times the median epoch time, which does not count time a run spent stopped (the
# records' `train_seconds` is the raw wall-clock sum). Evaluation time is wall-clock: it includes
# time the run shared the machine with another or was paused, so equal cells can differ.

# %%
header = ("dataset", "model", "prior", "settings changed", "K", "seed", "status", "epochs (best)", "S",
          "train images", "test LL", "s/epoch", "train min", "eval min", "evaluated at", "trained at")
lines = []
for r in rows:
    m = r.get("metrics") or {}
    lines.append((r["dataset"], r["model"], r["prior"], changes_text(r["config"]) or "&ndash;", r["components"],
                  r["seed"], r["status"],
                  f"{m['epochs_trained']} ({m['best_epoch']})" if m else "", r["eval_samples"],
                  m.get("n_train", ""), f"{m['test_ll']:.2f}" if m else "",
                  f"{m['seconds_per_epoch']:.2f}" if m else "", f"{training_seconds(m) / 60:.1f}" if m else "",
                  f"{m['eval_seconds'] / 60:.1f}" if m else "", (r.get("git_commit") or "")[:10],
                  r.get("trained_by", "") if m else ""))
display(HTML("<table><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"
             + "".join("<tr>" + "".join(f"<td>{v}</td>" for v in line) + "</tr>" for line in lines)
             + "</table>"))
display(Markdown(f"In all: {duration(train_s)} of training and {duration(eval_s)} of evaluation "
                 f"over {len(complete)} runs, on {', '.join(hardware) or 'no hardware yet'}. "
                 f"`results.csv` beside this page holds the same rows."))
if complete:
    prov = complete[0]["metrics"]["provenance"]
    print("packages:", ", ".join(f"{k} {v}" for k, v in prov["packages"].items()))
    print("python", prov["python"], "on", prov["hardware"]["platform"])
