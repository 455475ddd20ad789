# %% [markdown]
# # Training: one run of the paper's protocol
#
# This notebook trains (or resumes) one model of the reproduction (the VAE, or the paper's
# two-level HVAE, with one of the four priors) and shows how it learned. It is parameterized:
# `vampprior report` runs it with papermill once per cell of its plan, each time into its own run
# directory, and then runs the [evaluation notebook](evaluation.ipynb) on what it trained. What it
# computes is written to `run_dir` as data (`checkpoint.npz`, `history.csv`), and the evaluation
# and the report are built from those files.
#
# **Budget.** `profile` sets epochs, subset sizes, K and the number of importance samples S:
# `smoke` (seconds, numbers mean nothing), `quick` (a reduced budget), `paper` (the paper's
# protocol: up to 2000 epochs, KL warm-up 100, early stopping after 50 + 1 epochs without a
# better validation loss, K=500, S=5000). Explicit parameters below override the profile.
#
# The trainer here is the paper-protocol one (`vae_lib.pipeline.trainer.Trainer`): checkpoints,
# exact resume after a kill, one random stream per purpose, dynamic binarization. Its optimizer
# step is the model's own `gradient_step`, the one Keras' `fit` runs (see the
# [own-model notebook](own_model.ipynb) for `fit`).

# %%
import importlib.util, os, subprocess, sys  # noqa: E401
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # quiet TensorFlow's C++ start-up lines (before it loads)
if importlib.util.find_spec("vae_lib") is None:  # a fresh Colab runtime: set VAE_LIB_REPOSITORY first (README, Colab)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    f"vae_lib @ git+{os.environ['VAE_LIB_REPOSITORY']}"], check=True)

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
import matplotlib.pyplot as plt

from vae_lib.pipeline.config import make_config
from vae_lib.pipeline.experiment import train_run
from vae_lib.pipeline.rundir import default_run_dir
from vae_lib.plots import learning_curves

plt.rcParams["figure.dpi"] = 72  # the executed notebook is kept with each run's record: keep it light
config = make_config(dataset, prior, profile, **settings)
run_dir = run_dir or default_run_dir(config)
print(f"{config.dataset} / {config.model} / {config.prior}, profile {config.profile}: "
      f"K={config.components}, up to {config.epochs} epochs; run directory {run_dir.name}")

# %% [markdown]
# ## Train
# `train_run` resumes from `run_dir/checkpoint.npz` when the run was interrupted, and trains
# nothing when its training is over (stopped early, or at its epoch cap).

# %%
state = train_run(config, run_dir, data_dir=data_dir, progress=progress, threads=threads,
                  checkpoint_every_seconds=checkpoint_every)

# %% tags=["nbval-check-output"]
print(f"dataset {config.dataset}, model {config.model}, prior {config.prior}, K={config.components}")
print(f"epochs trained: {state.epoch}, best epoch {state.best_epoch}, stopped early: {state.stopped_early}")

# %%
print(f"best validation loss (negative ELBO) {state.best_loss:.2f} nats, "
      f"{state.train_seconds:.1f} s of training in {len(state.segments)} segment(s)")

# %% [markdown]
# ## Learning curves
# The training loss weighs the KL term by the warm-up weight beta (rising from 0 to 1), so early on
# it sits below the validation negative ELBO, which always uses beta = 1.

# %%
learning_curves(state.history, title=f"{dataset} / {config.model} / {prior}")
plt.show()
