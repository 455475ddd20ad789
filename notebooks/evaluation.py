# %% [markdown]
# # Evaluation: the test log-likelihood of a trained run
#
# This notebook evaluates one run that the [training notebook](training.ipynb) (or `vampprior
# train`) has trained: the importance-sampled test log-likelihood with S samples per image (in
# nats, and in bits per dimension for Frey Faces), the test ELBO, the effective sample sizes, and
# images for the figures. It takes the same parameters as the training notebook, which name the
# run directory; `vampprior report` runs it with papermill after the training notebook of each
# cell. What it computes is written to the run directory as data (`test_ll.npz`, `images.npz`,
# and `metrics.json` last), and the report is built from those files.
#
# The model is rebuilt from the run's settings with the weights of its best validation epoch,
# read from its checkpoint; a run evaluated already is read back, not evaluated again.

# %%
import importlib.util, os, subprocess, sys  # noqa: E401
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # quiet TensorFlow's C++ start-up lines (before it loads)
if importlib.util.find_spec("vae_lib") is None:  # a fresh Colab runtime: set VAE_LIB_REPOSITORY first (README, Colab)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    f"vae_lib @ git+{os.environ['VAE_LIB_REPOSITORY']}"], check=True)

# %% tags=["parameters"]
dataset = "static_mnist"  # as the training notebook's parameters: they name the run
prior = "vampprior"
profile = "smoke"
settings = {}
run_dir = None  # None: $VAE_RUNS_DIR (else runs)/<profile>/<name made from the settings>
data_dir = None  # None: $VAE_DATA_DIR, else download into the user cache
threads = None  # TensorFlow threads; None: every core
progress = True

# %%
import matplotlib.pyplot as plt

from vae_lib.pipeline.config import make_config
from vae_lib.pipeline.experiment import evaluate_run
from vae_lib.pipeline.records import load_run
from vae_lib.pipeline.rundir import default_run_dir
from vae_lib.plots import image_grid, ll_histogram

plt.rcParams["figure.dpi"] = 72  # the executed notebook is kept with each run's record: keep it light
config = make_config(dataset, prior, profile, **settings)
run_dir = run_dir or default_run_dir(config)
metrics = evaluate_run(run_dir, data_dir=data_dir, progress=progress, threads=threads)
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
# ## Per-image test log-likelihood
# The mean hides a long tail of images the model finds unlikely.

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
