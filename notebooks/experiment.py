# %% [markdown]
# # One experiment: train a VAE with a given prior, evaluate its test log-likelihood
#
# This notebook trains (or resumes) one model (the VAE, or the paper's two-level HVAE) through
# `vae_lib`, evaluates it, and shows what it learned. It is parameterized: `vampprior report`
# runs it with papermill once per cell of its plan, each time into its own run directory. Everything it computes is written to
# `run_dir` as data (`metrics.json`, `history.csv`, `test_ll.npz`, `images.npz`), and the report
# is built from those files.
#
# **Budget.** `profile` sets epochs, subset sizes, K and the number of importance samples S:
# `smoke` (seconds, numbers mean nothing), `quick` (a reduced budget), `paper` (the paper's
# protocol: up to 2000 epochs, KL warm-up 100, early stopping after 50 + 1 epochs without a
# better validation loss, K=500, S=5000).
# Explicit parameters below override the profile.

# %%
import importlib.util
import os
import subprocess
import sys

if "TF_CPP_MIN_LOG_LEVEL" not in os.environ:  # quiet C++ logs; set before TensorFlow is imported
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
if importlib.util.find_spec("vae_lib") is None:  # e.g. a fresh Colab runtime: install the package
    REPOSITORY = os.environ.get("VAE_LIB_REPOSITORY", "https://github.com/<OWNER>/<REPO>")
    if "<OWNER>" in REPOSITORY:
        raise RuntimeError("vae_lib is not installed. Set VAE_LIB_REPOSITORY to this repository's "
                           "URL (os.environ['VAE_LIB_REPOSITORY'] = 'https://github.com/...') and "
                           "run this cell again, or pip install the package first (README, Colab).")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"vae_lib @ git+{REPOSITORY}"], check=True)

# %% tags=["parameters"]
dataset = "static_mnist"  # static_mnist, dynamic_mnist, fashion_mnist, caltech101_silhouettes, frey_faces
prior = "vampprior"  # standard, vampprior, vampprior_data, mog
profile = "smoke"  # smoke, quick, paper
settings = {}  # other RunConfig settings, e.g. {"model": "hvae", "components": 50, "seed": 1}
run_dir = None  # None: $VAE_RUNS_DIR (else runs)/<profile>/<name made from the settings>
data_dir = None  # None: $VAE_DATA_DIR, else download into the user cache
threads = None  # TensorFlow threads; None: every core
checkpoint_every = 30.0  # seconds between checkpoints (0: every epoch)
progress = True

# %%
from pathlib import Path

import matplotlib.pyplot as plt

from vae_lib.pipeline.config import default_runs_dir, make_config
from vae_lib.pipeline.experiment import run_experiment
from vae_lib.plots import image_grid, learning_curves, ll_histogram
from vae_lib.pipeline.records import load_run
from vae_lib.pipeline.rundir import run_dir_name

plt.rcParams["figure.dpi"] = 72  # the executed notebook is kept with each run's record: keep it light
config = make_config(dataset, prior, profile, **settings)
if run_dir is None:
    run_dir = f"{default_runs_dir()}/{profile}/{run_dir_name(config)}"
print(f"{config.dataset} / {config.model} / {config.prior}, profile {config.profile}: "
      f"K={config.components}, up to {config.epochs} epochs, S={config.eval_samples}; "
      f"run directory {Path(run_dir).name}")

# %% [markdown]
# ## Train and evaluate
# `run_experiment` resumes from `run_dir/checkpoint.npz` when the run was interrupted, and returns
# the stored results without recomputing when the run is already complete.

# %%
metrics = run_experiment(config, run_dir, data_dir=data_dir, progress=progress, threads=threads,
                         checkpoint_every_seconds=checkpoint_every)
run = load_run(run_dir, data_dir=data_dir, with_model=False)

# %% tags=["nbval-check-output"]
print(f"dataset {metrics['dataset']}, model {config.model}, prior {metrics['prior']}, K={metrics['components']}, "
      f"{metrics['n_train']} training / {metrics['n_test']} test images")
print(f"epochs trained: {metrics['epochs_trained']}, importance samples S={metrics['eval_samples']}")

# %%
print(f"test log-likelihood: {metrics['test_ll']:.2f} +- {metrics['test_ll_stderr']:.2f} nats "
      f"(S={metrics['eval_samples']}; standard error over the test images); test ELBO {metrics['test_elbo']:.2f}")
print(f"Monte Carlo error of the importance-sampled estimate: {metrics['test_ll_mc_stderr']:.3f} nats; "
      f"effective sample size per image: median {metrics['test_ess_median']:.0f} of {metrics['eval_samples']}")
if "test_bits_per_dim" in metrics:
    print(f"  = {metrics['test_bits_per_dim']:.3f} bits/dim")
print(f"best epoch {metrics['best_epoch']} of {metrics['epochs_trained']}, "
      f"{metrics['seconds_per_epoch']:.2f} s/epoch, evaluation {metrics['eval_seconds']:.1f} s")

# %% [markdown]
# ## Learning curves
# The training loss weighs the KL term by the warm-up weight beta (rising from 0 to 1), so early on
# it sits below the validation negative ELBO, which always uses beta = 1.

# %%
learning_curves(run.history, title=f"{dataset} / {config.model} / {prior}")
plt.show()

# %% [markdown]
# ## Per-image test log-likelihood
# The mean in the table hides a long tail of images the model finds unlikely.

# %%
ll_histogram({prior: run.test_ll}, title=f"{dataset}: per-image test log-likelihood")
plt.show()

# %% [markdown]
# ## Reconstructions, samples and pseudo-inputs
# Reconstructions are the decoder's mean at the encoder's mean; samples are decoder means for
# z ~ p(z). For the VampPrior, the pseudo-inputs u_k are shown as images: the prior is the mixture
# of the encoder's posteriors at these images.

# %%
images, shape = run.images, tuple(run.images["image_shape"])
fig, axes = plt.subplots(1, 3, figsize=(9, 3.4))
image_grid(images["test_images"][:25], shape, ncols=5, ax=axes[0], title="test images")
image_grid(images["reconstructions"][:25], shape, ncols=5, ax=axes[1], title="reconstructions")
image_grid(images["samples"][:25], shape, ncols=5, ax=axes[2], title=f"samples from the {prior} prior")
plt.show()

# %%
if "pseudo_inputs" in images:
    shown = images["pseudo_inputs"][:50]
    image_grid(shown, shape, title=f"{prior}: {len(shown)} of its {config.components} pseudo-inputs")
    plt.show()
else:
    print(f"The {prior} prior has no pseudo-inputs.")
