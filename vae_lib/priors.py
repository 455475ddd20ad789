"""Priors p(z): each one small class with ``log_prob(z)`` and ``sample(n, seed)``.

A new prior is a new subclass of :class:`Prior`, registered in :data:`PRIORS`; nothing else changes.
Sampling takes an explicit ``seed`` (a shape-[2] integer tensor) and uses stateless random ops, so
results are reproducible and the code compiles with XLA.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .densities import RNG_ALG, kl_normal_standard, log_mixture_normal_diag, log_standard_normal
from .errors import ConfigError


class Prior(keras.layers.Layer):
    """Interface. ``log_prob``: (..., D) -> (...). ``sample``: n -> (n, D)."""

    has_analytic_kl = False  # True where KL(q(z|x) || p(z)) has a closed form

    def __init__(self, latent_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim

    def log_prob(self, z):
        raise NotImplementedError

    def sample(self, n: int, seed):
        raise NotImplementedError

    def analytic_kl(self, mean, logvar):
        raise NotImplementedError(f"{type(self).__name__} has no closed-form KL")

    def frozen(self) -> "Prior":
        """A prior with the same density whose parameters are constants, for evaluation:
        for the VampPrior this encodes the K pseudo-inputs once instead of at every call."""
        return self

    def encode_batch(self, encoder, x):
        """(mean, logvar) of q(z|x) for a batch, and the prior to score its z under (``self``,
        unless the prior depends on the encoder: see :meth:`VampPrior.encode_batch`)."""
        mean, logvar = encoder(x)
        return mean, logvar, self


class StandardNormal(Prior):
    """p(z) = N(0, I)."""

    has_analytic_kl = True

    def log_prob(self, z):
        return log_standard_normal(z)

    def sample(self, n, seed):
        return tf.random.stateless_normal([n, self.latent_dim], seed=seed, alg=RNG_ALG)

    def analytic_kl(self, mean, logvar):
        return kl_normal_standard(mean, logvar)


class GaussianMixture(Prior):
    """Uniform mixture of K diagonal Gaussians given by ``mixture_params()`` -> (means, logvars)."""

    def mixture_params(self):
        raise NotImplementedError

    def log_prob(self, z):
        means, logvars = self.mixture_params()
        return log_mixture_normal_diag(z, means, logvars)

    def sample(self, n, seed):
        means, logvars = self.mixture_params()
        pick_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        k = tf.random.stateless_uniform([n], pick_seed, minval=0, maxval=tf.shape(means)[0],
                                        dtype=tf.int32, alg=RNG_ALG)
        eps = tf.random.stateless_normal([n, self.latent_dim], seed=noise_seed, alg=RNG_ALG)
        return tf.gather(means, k) + tf.exp(0.5 * tf.gather(logvars, k)) * eps

    def frozen(self):
        means, logvars = self.mixture_params()
        return FixedMixture(tf.constant(means), tf.constant(logvars))


class FixedMixture(GaussianMixture):
    """A mixture with constant parameters (what :meth:`Prior.frozen` returns for mixtures)."""

    def __init__(self, means, logvars, **kwargs):
        super().__init__(int(means.shape[-1]), **kwargs)
        self._means, self._logvars = means, logvars

    def mixture_params(self):
        return self._means, self._logvars

    def frozen(self):
        return self


class MixtureOfGaussians(GaussianMixture):
    """p(z) = (1/K) sum_k N(z; m_k, diag(exp(s_k))) with learned means and log-variances."""

    def __init__(self, latent_dim, num_components, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.num_components = num_components
        self.means = self.add_weight(shape=(num_components, latent_dim), name="means",
                                     initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.logvars = self.add_weight(shape=(num_components, latent_dim), name="logvars",
                                       initializer="zeros")

    def mixture_params(self):
        return self.means, self.logvars


class VampPrior(GaussianMixture):
    """p(z) = (1/K) sum_k q(z | u_k), with K learned pseudo-inputs u_k.

    ``encoder`` maps images (N, D_x) to (mean, logvar) of q(z|x); it is the VAE's own encoder and is
    stored as a plain callable so that its weights are owned (and saved) once, by the VAE.
    The raw K x D_x parameter goes through a hardtanh into the data range [0, 1].
    """

    def __init__(self, latent_dim, num_components, input_dim, encoder, init_mean=0.05,
                 init_std=0.01, initial_pseudo_inputs=None, trainable_pseudo_inputs=True, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.num_components = num_components
        self._encode = encoder.__call__  # a bound method: Keras does not track it as a sublayer
        if initial_pseudo_inputs is not None:
            init = keras.initializers.Constant(np.asarray(initial_pseudo_inputs, np.float32))
        else:
            init = keras.initializers.RandomNormal(mean=init_mean, stddev=init_std)
        self.pseudo_inputs_raw = self.add_weight(shape=(num_components, input_dim),
                                                 initializer=init, name="pseudo_inputs",
                                                 trainable=trainable_pseudo_inputs)

    def pseudo_inputs(self):
        return tf.clip_by_value(self.pseudo_inputs_raw, 0.0, 1.0)  # hardtanh into [0, 1]

    def mixture_params(self):
        return self._encode(self.pseudo_inputs())

    def encode_batch(self, encoder, x):
        """The batch and the K pseudo-inputs go through the encoder in one pass: one (B+K)-row
        matmul per layer runs faster on a CPU than a B-row and a K-row one, and gives the same
        numbers (gradients reach the pseudo-inputs and the encoder through both parts)."""
        mean, logvar = encoder(tf.concat([x, self.pseudo_inputs()], axis=0))
        n = tf.shape(x)[0]
        return mean[:n], logvar[:n], MixtureDensity(mean[n:], logvar[n:])


class MixtureDensity:
    """log_prob of a uniform Gaussian mixture given as tensors; what :meth:`VampPrior.encode_batch`
    returns (a plain object, not a layer: it is made inside compiled steps)."""

    has_analytic_kl = False

    def __init__(self, means, logvars):
        self.means, self.logvars = means, logvars

    def log_prob(self, z):
        return log_mixture_normal_diag(z, self.means, self.logvars)


PRIORS = ("standard", "vampprior", "vampprior_data", "mog")


def check_prior_name(name: str) -> str:
    if name not in PRIORS:
        raise ConfigError(f"Unknown prior {name!r}. Choose one of: {', '.join(PRIORS)}.")
    return name


def make_prior(name: str, latent_dim: int, *, num_components: int = 500, encoder=None,
               input_dim: int | None = None, train_images=None, pseudo_init=(0.05, 0.01),
               trainable_pseudo_inputs: bool | None = None, seed: int = 0) -> Prior:
    """Build the prior called ``name`` (one of :data:`PRIORS`).

    ``vampprior_data`` takes its K pseudo-inputs from ``train_images`` (drawn with ``seed``) and
    keeps them fixed unless ``trainable_pseudo_inputs`` is True.
    """
    check_prior_name(name)
    if name == "standard":
        return StandardNormal(latent_dim, name="prior")
    if num_components <= 0:
        raise ConfigError(f"The number of components must be positive, got {num_components}.")
    if name == "mog":
        return MixtureOfGaussians(latent_dim, num_components, name="prior")
    if encoder is None or input_dim is None:
        raise ConfigError(f"The {name} prior needs the VAE's encoder and the input size.")
    if name == "vampprior":
        return VampPrior(latent_dim, num_components, input_dim, encoder, *pseudo_init,
                         trainable_pseudo_inputs=trainable_pseudo_inputs is not False, name="prior")
    if train_images is None or len(train_images) < num_components:
        have = 0 if train_images is None else len(train_images)
        raise ConfigError(f"vampprior_data needs {num_components} training images, has {have}.")
    pick = np.random.default_rng(seed).choice(len(train_images), num_components, replace=False)
    return VampPrior(latent_dim, num_components, input_dim, encoder,
                     initial_pseudo_inputs=np.asarray(train_images)[np.sort(pick)],
                     trainable_pseudo_inputs=bool(trainable_pseudo_inputs), name="prior")
