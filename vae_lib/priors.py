"""Priors p(z): each one small class with ``log_prob(z)`` and ``sample(n, seed)``, built by name
through :data:`vae_lib.pipeline.registry.PRIORS` (the one place that knows the names).

A prior's density is a function of its ``params()`` (for a mixture: the components' means and
log-variances). Evaluation computes them once and passes them back in (``log_prob(z, params)``), so
the VampPrior's K pseudo-inputs are encoded once per evaluation, not once per importance-sampling
pass. Sampling takes an explicit stateless ``seed`` (Philox: fast with and without XLA).
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .densities import RNG_ALG, kl_normal_standard, log_mixture_normal_diag, log_standard_normal
from .errors import ConfigError
from .pipeline.registry import PRIORS, check_prior_name


class Prior(keras.layers.Layer):
    """Interface. ``log_prob``: (..., D) -> (...). ``sample``: n -> (n, D)."""

    has_closed_form_kl = False  # True where KL(q(z|x) || p(z)) has a closed form

    def __init__(self, latent_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = latent_dim

    def params(self):
        """The tensors that define the density (a nest; empty for a fixed prior)."""
        return ()

    def log_prob(self, z, params=None):
        raise NotImplementedError

    def sample(self, n: int, seed, params=None):
        raise NotImplementedError

    def closed_form_kl(self, mean, logvar):
        raise NotImplementedError(f"{type(self).__name__} has no closed-form KL")

    def own_trainable_weights(self) -> list:
        """The trainable weights the prior adds to the model (the VampPrior's pseudo-inputs; not
        the weights of the encoder it shares)."""
        shared = {id(v) for v in self.encoder.weights} if hasattr(self, "encoder") else set()
        return [v for v in self.trainable_weights if id(v) not in shared]

    def encoder_inputs(self):
        """Inputs this prior needs encoded by the model's (top) encoder, or None. A model encodes
        them together with its batch, and passes the encoder's (mean, logvar) on them as ``params``
        (the VampPrior's pseudo-inputs)."""
        return None


class StandardNormal(Prior):
    """p(z) = N(0, I)."""

    has_closed_form_kl = True

    def log_prob(self, z, params=None):
        return log_standard_normal(z)

    def sample(self, n, seed, params=None):
        return tf.random.stateless_normal([n, self.latent_dim], seed=seed, alg=RNG_ALG)

    def closed_form_kl(self, mean, logvar):
        return kl_normal_standard(mean, logvar)


class GaussianMixture(Prior):
    """Uniform mixture of K diagonal Gaussians; ``params()`` -> (means, logvars), each (K, D)."""

    def log_prob(self, z, params=None):
        means, logvars = self.params() if params is None else params
        return log_mixture_normal_diag(z, means, logvars)

    def sample(self, n, seed, params=None):
        means, logvars = self.params() if params is None else params
        pick_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        k = tf.random.stateless_uniform([n], pick_seed, minval=0, maxval=tf.shape(means)[0],
                                        dtype=tf.int32, alg=RNG_ALG)
        eps = tf.random.stateless_normal([n, self.latent_dim], seed=noise_seed, alg=RNG_ALG)
        return tf.gather(means, k) + tf.exp(0.5 * tf.gather(logvars, k)) * eps


class MixtureOfGaussians(GaussianMixture):
    """p(z) = (1/K) sum_k N(z; m_k, diag(exp(s_k))) with learned means and log-variances.

    Initialised to match N(0, I) in its first two moments, so that it starts where the standard
    prior is and is a fair baseline: means ~ N(0, 1/2), variances 1/2 (total variance 1 per
    dimension). Means ~ N(0, 1) with unit variances would start twice as wide as N(0, I).
    The log-variances are free, not clamped like the encoder's to [-6, 2]: a clamp would change
    the trained MoG runs of the paper report, whose log-variances ended in [-4.4, 2.5]."""

    def __init__(self, latent_dim, num_components, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.num_components = num_components
        self.means = self.add_weight(shape=(num_components, latent_dim), name="means",
                                     initializer=keras.initializers.RandomNormal(stddev=np.sqrt(0.5)))
        self.logvars = self.add_weight(shape=(num_components, latent_dim), name="logvars",
                                       initializer=keras.initializers.Constant(np.log(0.5)))

    def params(self):
        return self.means, self.logvars


class VampPrior(GaussianMixture):
    """p(z) = (1/K) sum_k q(z | u_k), with K pseudo-inputs u_k.

    ``encoder`` is the model's own q(z|x) network (for the HVAE, q(z2|x)); its weights are owned
    by the model (Keras counts them once). The raw K x D_x parameter goes through a hardtanh into
    the data range [0, 1], as in the paper's code.
    """

    def __init__(self, latent_dim, num_components, input_dim, encoder, init_mean=0.05,
                 init_std=0.01, initial_pseudo_inputs=None, trainable_pseudo_inputs=True, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.num_components = num_components
        self.encoder = encoder
        if initial_pseudo_inputs is not None:
            init = keras.initializers.Constant(np.asarray(initial_pseudo_inputs, np.float32))
        else:
            init = keras.initializers.RandomNormal(mean=init_mean, stddev=init_std)
        self.pseudo_inputs_raw = self.add_weight(shape=(num_components, input_dim),
                                                 initializer=init, name="pseudo_inputs",
                                                 trainable=trainable_pseudo_inputs)

    def pseudo_inputs(self):
        return tf.clip_by_value(self.pseudo_inputs_raw, 0.0, 1.0)  # hardtanh into [0, 1]

    def encoder_inputs(self):
        return self.pseudo_inputs()

    def params(self):
        return self.encoder(self.pseudo_inputs())


# -- builders, named in vae_lib.pipeline.registry.PRIORS ----------------------------------------------------
def build_standard(latent_dim, **_):
    return StandardNormal(latent_dim, name="prior")


def build_mog(latent_dim, *, num_components, **_):
    return MixtureOfGaussians(latent_dim, num_components, name="prior")


def build_vampprior(latent_dim, *, num_components, encoder, input_dim, pseudo_init=(0.05, 0.01),
                    trainable_pseudo_inputs=None, **_):
    return VampPrior(latent_dim, num_components, input_dim, encoder, *pseudo_init,
                     trainable_pseudo_inputs=trainable_pseudo_inputs is not False, name="prior")


# The paper's code initialises data-based pseudo-inputs with training images plus this noise
# (utils/load_data.py, --use_training_data_init) and then learns them.
DATA_INIT_NOISE_STD = 0.01


def build_vampprior_data(latent_dim, *, num_components, encoder, input_dim, train_images=None,
                         trainable_pseudo_inputs=None, seed=0, **_):
    """K random training images as pseudo-inputs: fixed (the default, as the reference report
    ran it), or, with ``trainable_pseudo_inputs``, plus N(0, 0.01^2) noise and learned from there
    (as the paper's code runs it). On a dynamically binarized dataset the training images are grey
    levels and stay so: a grey digit is the expectation of the binary ones the encoder sees, and a
    fixed binary draw would be one arbitrary sample of it."""
    have = 0 if train_images is None else len(train_images)
    if have < num_components:
        raise ConfigError(f"vampprior_data with K={num_components} needs at least {num_components} "
                          f"training images to use as pseudo-inputs, has {have}.")
    rng = np.random.default_rng(seed)
    images = np.asarray(train_images)[np.sort(rng.choice(have, num_components, replace=False))]
    if trainable_pseudo_inputs:
        images = images + DATA_INIT_NOISE_STD * rng.standard_normal(images.shape)
    return VampPrior(latent_dim, num_components, input_dim, encoder, initial_pseudo_inputs=images,
                     trainable_pseudo_inputs=bool(trainable_pseudo_inputs), name="prior")


def make_prior(name: str, latent_dim: int, *, num_components: int = 500, encoder=None,
               input_dim: int | None = None, train_images=None, pseudo_init=(0.05, 0.01),
               trainable_pseudo_inputs: bool | None = None, seed: int = 0) -> Prior:
    """Build the prior called ``name`` (a key of :data:`PRIORS`)."""
    spec = PRIORS[check_prior_name(name)]
    if spec.mixture and num_components <= 0:
        raise ConfigError(f"The number of components must be positive, got {num_components}.")
    if spec.has_pseudo_inputs and (encoder is None or input_dim is None):
        raise ConfigError(f"The {name} prior needs the model's encoder and the input size.")
    return spec.build(latent_dim, num_components=num_components, encoder=encoder,
                      input_dim=input_dim, train_images=train_images, pseudo_init=pseudo_init,
                      trainable_pseudo_inputs=trainable_pseudo_inputs, seed=seed)
