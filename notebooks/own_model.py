# %% [markdown]
# # The VampPrior in your own model
#
# The other notebooks reproduce the paper with its own networks. This one shows what a
# practitioner does with `vae_lib`: bring a Keras encoder and decoder of your own (here small
# convolutional ones), give the model a prior, and train with Keras' `fit`. We train the same
# convolutional VAE twice on binarized FashionMNIST, once with the standard normal prior and once
# with a VampPrior, and compare their test log-likelihoods on the same test images, image by
# image. Then we look at samples and pseudo-inputs, and save and load the model.
#
# **Budget.** The defaults below train on a subset for a few epochs so that the notebook runs in a
# few minutes on 2 CPU cores; the numbers they give are those of that reduced budget, not of the
# paper's protocol (which the report's runs follow). Raise `epochs`, `train_images` and
# `num_samples` for real numbers; on a GPU (Colab) the defaults take seconds.

# %%
import importlib.util, os, subprocess, sys  # noqa: E401
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # quiet TensorFlow's C++ start-up lines (before it loads)
if importlib.util.find_spec("vae_lib") is None:  # a fresh Colab runtime: set VAE_LIB_REPOSITORY first (README, Colab)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    f"vae_lib @ git+{os.environ['VAE_LIB_REPOSITORY']}"], check=True)

# %% tags=["parameters"]
train_images = 10_000  # a fixed random subset of FashionMNIST's 50,000 training images
test_images = 1000  # likewise of its 10,000 test images
epochs = 6
warmup_epochs = 3  # KL warm-up
num_components = 100  # K, the VampPrior's pseudo-inputs
latent_dim = 16
num_samples = 100  # S, importance samples per test image (the paper: 5000)
seed = 0
data_dir = None  # None: $VAE_DATA_DIR, else download into the user cache
out_dir = None  # where the saved model goes; None: a temporary folder

# %%
import tempfile
import time
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np

import vae_lib
from vae_lib.plots import image_grid, learning_curves

plt.rcParams["figure.dpi"] = 72
data = vae_lib.load_dataset("fashion_mnist", data_dir)  # binarized once, with a fixed seed
rng = np.random.default_rng(seed)
as_images = lambda x: x.reshape(-1, 28, 28, 1)  # the library's datasets are flat rows
x_train = as_images(data.train[rng.choice(len(data.train), train_images, replace=False)])
x_valid = as_images(data.valid[:2000])
x_test = as_images(data.test[np.sort(rng.choice(len(data.test), test_images, replace=False))])
print(f"{len(x_train)} training, {len(x_valid)} validation and {len(x_test)} test images of shape "
      f"{x_train.shape[1:]}, binary pixels")

# %% [markdown]
# ## Your own encoder and decoder
# The encoder maps images to the mean and log-variance of q(z|x); it may return them as a pair or,
# as here, as one tensor of 2Z numbers (means first). The decoder maps z to the likelihood's
# parameters: for binary pixels, one logit per pixel, in the images' shape. The model feeds the
# decoder (N, Z) batches, whatever it does inside (the importance sampler's S x B latents are
# flattened for it), so any Keras model will do.


# %%
def conv_networks():
    encoder = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(2 * latent_dim),
    ], name="encoder")
    decoder = keras.Sequential([
        keras.Input((latent_dim,)),
        keras.layers.Dense(7 * 7 * 64, activation="relu"),
        keras.layers.Reshape((7, 7, 64)),
        keras.layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same"),  # logits
    ], name="decoder")
    return encoder, decoder


# %% [markdown]
# ## The same model with two priors, trained by `fit`
# `vae_lib.VampPrior(K)` makes K pseudo-inputs shaped like the encoder's inputs (here 28 x 28 x 1
# images), starting near-empty as the paper's for MNIST; the prior is the mixture of q(z|u_k) over
# them, so it shares the encoder, which the model lists once. `fit` logs the `loss` (distortion +
# KL weight x rate), the `distortion` (-log p(x|z)) and the `rate` (the KL term), all in nats per
# image; `val_loss` is the negative ELBO, which the paper's early stopping watches.

# %%
models, histories = {}, {}
for name, prior in [("standard", vae_lib.StandardNormal()),
                    ("vampprior", vae_lib.VampPrior(num_components))]:
    keras.utils.set_random_seed(seed)  # the same initial encoder and decoder for both
    encoder, decoder = conv_networks()
    model = vae_lib.VAE(encoder, decoder, prior, likelihood="bernoulli", seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    started = time.perf_counter()
    histories[name] = model.fit(
        x_train, validation_data=(x_valid,), epochs=epochs, batch_size=100, verbose=0,
        callbacks=[vae_lib.KLWarmup(warmup_epochs),
                   vae_lib.PaperEarlyStopping(patience=5, warmup_epochs=warmup_epochs)])
    models[name] = model
    print(f"{name:10s} {len(histories[name].history['loss'])} epochs, best validation -ELBO "
          f"{min(histories[name].history['val_loss']):.2f} nats, {time.perf_counter() - started:.0f} s")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
for ax, name in zip(axes, models):
    learning_curves(histories[name], ax=ax, title=name)
plt.show()

# %% [markdown]
# ## Test log-likelihood, paired image by image
# `vae_lib.log_likelihood` is the importance-sampled log p(x) with S samples from q(z|x) per image
# (the IWAE bound, a lower bound that tightens as S grows). Both models score the same test
# images, so the difference that matters is the per-image one: its mean, with the standard error
# of that mean over the images.

# %%
test_ll = {name: vae_lib.log_likelihood(model, x_test, num_samples=num_samples, seed=seed)
           for name, model in models.items()}
for name, ll in test_ll.items():
    print(f"{name:10s} test log-likelihood {ll.mean():8.2f} +- {ll.std(ddof=1) / np.sqrt(len(ll)):.2f} nats")
gain, gain_se = vae_lib.paired_difference(test_ll["vampprior"], test_ll["standard"])
print(f"VampPrior - standard, per image: {gain:+.2f} +- {gain_se:.2f} nats "
      f"({len(x_test)} test images, S={num_samples}; {epochs} epochs on {train_images} images: a reduced budget)")

# %% [markdown]
# ## Samples and pseudo-inputs
# Samples are the decoder's mean at z ~ p(z). The VampPrior's pseudo-inputs are images: its
# components are the encoder's posteriors at these images.

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
image_grid(models["standard"].sample(25).numpy(), (28, 28), ncols=5, ax=axes[0], title="samples, standard prior")
image_grid(models["vampprior"].sample(25).numpy(), (28, 28), ncols=5, ax=axes[1], title="samples, VampPrior")
image_grid(models["vampprior"].prior.pseudo_inputs().numpy()[:25], (28, 28), ncols=5, ax=axes[2],
           title=f"25 of the K={num_components} pseudo-inputs")
plt.show()

# %% [markdown]
# ## Save and load
# `model.save` writes the whole model (its encoder, decoder, prior and likelihood, and their
# weights) in Keras' format; `keras.saving.load_model` reads it back, and `vae_lib.load_model`
# does the same with a clear error for a missing or damaged file. The loaded model scores the
# test images exactly as the trained one does.

# %%
folder = Path(out_dir or tempfile.mkdtemp())
path = folder / "vampprior_vae.keras"
models["vampprior"].save(path)
loaded = vae_lib.load_model(path)
same_images = x_test[:100]
before = vae_lib.log_likelihood(models["vampprior"], same_images, num_samples=num_samples, seed=seed)
after = vae_lib.log_likelihood(loaded, same_images, num_samples=num_samples, seed=seed)

# %% tags=["nbval-check-output"]
print(f"loaded a {type(loaded).__name__} with a {type(loaded.prior).__name__} prior; "
      f"the same test log-likelihoods as the trained model: {np.array_equal(before, after)}")
