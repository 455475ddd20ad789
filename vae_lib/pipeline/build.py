"""A run's data and model from its :class:`~vae_lib.pipeline.config.RunConfig`: the one place where
the names of the settings (prior, model, activation, initialisation, optimizer) become the core's
classes, which are then built by calling them."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..datasets import Dataset
from .config import RunConfig
from .rundir import CHECKPOINT

SUBSET_SEED = 20180412  # the same images for every run, whatever its own seed


def fixed_subset(images: np.ndarray, n: int | None) -> np.ndarray:
    """``n`` images drawn without replacement by a fixed seed, kept in file order; all if None.

    Not the first ``n``: the static-MNIST test file, for one, is sorted by digit."""
    if n is None or n >= len(images):
        return images
    keep = np.sort(np.random.default_rng(SUBSET_SEED).choice(len(images), n, replace=False))
    return images[keep]


def reduced_splits(dataset: Dataset, config: RunConfig) -> Dataset:
    """At most ``max_*`` images of each split (reduced budgets); the split itself is fixed."""
    return dataclasses.replace(dataset, train=fixed_subset(dataset.train, config.max_train),
                               valid=fixed_subset(dataset.valid, config.max_valid),
                               test=fixed_subset(dataset.test, config.max_test))


def likelihood_for(dataset: Dataset):
    from .. import likelihoods

    return likelihoods.get(dataset.likelihood)


def prior_for(config: RunConfig, dataset: Dataset):
    """The prior ``config.prior`` names, with ``config.components`` components."""
    import keras

    from ..priors import MixtureOfGaussians, StandardNormal, VampPrior

    k = config.components
    if config.prior == "standard":
        return StandardNormal(name="prior")
    if config.prior == "mog":
        return MixtureOfGaussians(k, name="prior")
    if config.prior == "vampprior":
        mean, std = dataset.pseudo_init
        return VampPrior(k, keras.initializers.RandomNormal(mean=mean, stddev=std),
                         trainable=config.trainable_pseudo_inputs is not False, name="prior")
    if config.prior == "vampprior_data":
        return VampPrior.from_data(dataset.train, k, trainable=bool(config.trainable_pseudo_inputs),
                                   seed=config.seed, name="prior")
    raise AssertionError(config.prior)  # RunConfig checks the name


def build_model(config: RunConfig, dataset: Dataset):
    """The model of ``config`` for ``dataset``'s (flat) images, its weights initialised from the
    run's seed and built."""
    import keras

    from ..models import HVAE, VAE, ConvHVAE, PixelHVAE
    from ..networks import GaussianMLP, MLPDecoder, TwoInputGaussian, TwoInputMLPDecoder

    keras.utils.set_random_seed(config.seed)  # the weights' initial values
    likelihood = likelihood_for(dataset)
    z, units, layers = config.latent_dim, config.hidden_units, config.num_layers
    mlp = dict(activation=config.activation, init=config.weight_init)
    outputs, blocks = dataset.input_dim * likelihood.params_per_pixel, likelihood.params_per_pixel
    if config.model == "vae":
        encoder = GaussianMLP(z, units, layers, name="encoder", **mlp)
        decoder = MLPDecoder(outputs, blocks, units, layers, name="decoder", **mlp)
        model = VAE(encoder, decoder, prior_for(config, dataset), likelihood,
                    closed_form_kl=config.kl_estimator == "closed_form", seed=config.seed,
                    name=f"vae_{config.prior}")
    elif config.model in ("convhvae", "pixelhvae"):
        kind = ConvHVAE if config.model == "convhvae" else PixelHVAE
        model = kind(prior_for(config, dataset), likelihood, data_shape=(*dataset.image_shape, 1),
                     latent_dim=z, seed=config.seed, name=f"{config.model}_{config.prior}")
    else:
        q_z2 = GaussianMLP(z, units, layers, name="q_z2", **mlp)
        q_z1 = TwoInputGaussian(z, units, name="q_z1", **mlp)
        p_z1 = GaussianMLP(z, units, layers, name="p_z1", **mlp)
        p_x = TwoInputMLPDecoder(outputs, blocks, units, name="p_x", **mlp)
        model = HVAE(q_z2, q_z1, p_z1, p_x, prior_for(config, dataset), likelihood, seed=config.seed,
                     name=f"hvae_{config.prior}")
    model.build((None, dataset.input_dim))
    return model


def load_trained_model(run_dir, config: RunConfig, dataset: Dataset):
    """The run's model with the weights of its best epoch (else its last), from its checkpoint."""
    model = build_model(config, dataset)
    with np.load(Path(run_dir) / CHECKPOINT) as ckpt:
        key = "best" if "best_0" in ckpt.files else "model"
        model.set_weights([ckpt[f"{key}_{i}"] for i in range(len(model.weights))])
    return model


def optimizer_for(config: RunConfig):
    """Adam (epsilon 1e-8 as in the paper's code, PyTorch's default; Keras' form of the update,
    epsilon added to sqrt(v) before the bias correction of the step size, is the paper's), or the
    paper code's AdamNormGrad."""
    import keras

    from ..optimizers import AdamNormGrad

    kind = AdamNormGrad if config.optimizer == "adamnormgrad" else keras.optimizers.Adam
    return kind(config.learning_rate, epsilon=1e-8)
