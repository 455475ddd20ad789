"""Priors p(z): each one small Keras layer with ``log_prob(z, params)`` and ``sample(n, seed,
params)``, given to a model (:class:`vae_lib.VAE`, :class:`vae_lib.HVAE`) which puts it on its
(top) latent.

A prior's density is a function of its parameters (for a mixture: the components' means and
log-variances). The VampPrior's components are the model's encoder at its pseudo-inputs, so its
parameters come from the model (``model.prior_params()``); the prior itself holds only the
pseudo-inputs, never the encoder: its ``trainable_variables`` are its own, and a model lists each
of its variables once. Evaluation computes the parameters once and passes them back in, so the
K pseudo-inputs are encoded once per evaluation, not once per importance-sampling pass. Sampling
takes an explicit stateless ``seed`` (see :mod:`vae_lib.backend`).
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from . import backend
from .densities import kl_normal_standard, log_mixture_normal_diag, log_standard_normal
from .errors import ConfigError, check_count


class Prior(keras.layers.Layer):
    """Interface. ``log_prob``: (..., D) -> (...). ``sample``: n -> (n, D).

    A model builds its prior twice: ``build_inputs(data_shape)`` before its encoder (weights that
    live in data space: the VampPrior's pseudo-inputs) and ``build((None, latent_dim))`` once the
    encoder's output size is known."""

    has_closed_form_kl = False  # True where KL(q(z|x) || p(z)) has a closed form
    holds_weights = True  # built for one model's data and latent shapes: one model each (False: shared freely)

    def build_inputs(self, data_shape) -> None:
        """Create the weights that live in data space (none but the VampPrior's)."""

    def build(self, latent_shape):
        self.latent_dim = int(latent_shape[-1])

    def encoder_inputs(self):
        """Inputs the model must encode with its (top) encoder to get this prior's parameters, or
        None. A model encodes them together with its batch (the VampPrior's pseudo-inputs)."""
        return None

    def params(self):
        """The tensors that define the density (a nest; empty for a fixed prior)."""
        return ()

    def log_prob(self, z, params=None):
        raise NotImplementedError

    def sample(self, n: int, seed, params=None):
        raise NotImplementedError

    def closed_form_kl(self, mean, logvar):
        raise NotImplementedError(f"{type(self).__name__} has no closed-form KL")

    def call(self, z, params=None):
        return self.log_prob(z, params)

    # The model builds its prior (it alone knows the data's shape); a loaded prior waits for it.
    def get_build_config(self):
        return None

    def build_from_config(self, config):
        pass


@keras.saving.register_keras_serializable(package="vae_lib")
class StandardNormal(Prior):
    """p(z) = N(0, I)."""

    has_closed_form_kl = True
    holds_weights = False

    def log_prob(self, z, params=None):
        return log_standard_normal(z)

    def sample(self, n, seed, params=None):
        return backend.normal((n, self.latent_dim), seed)

    def closed_form_kl(self, mean, logvar):
        return kl_normal_standard(mean, logvar)


class MixturePrior(Prior):
    """A uniform mixture of K diagonal Gaussians given by its parameters (means, logvars), each
    (K, D): what the VampPrior and the mixture of Gaussians share."""

    def __init__(self, num_components: int, **kwargs):
        super().__init__(**kwargs)
        self.num_components = check_count("number of components", num_components)

    def log_prob(self, z, params=None):
        means, logvars = self.params() if params is None else params
        return log_mixture_normal_diag(z, means, logvars)

    def sample(self, n, seed, params=None):
        means, logvars = self.params() if params is None else params
        pick_seed, noise_seed = backend.split_seed(seed, 2)
        k = backend.randint((n,), pick_seed, ops.shape(means)[0])
        eps = backend.normal((n, ops.shape(means)[1]), noise_seed)
        return ops.take(means, k, axis=0) + ops.exp(0.5 * ops.take(logvars, k, axis=0)) * eps

    def get_config(self):
        return {**super().get_config(), "num_components": self.num_components}


@keras.saving.register_keras_serializable(package="vae_lib")
class MixtureOfGaussians(MixturePrior):
    """p(z) = (1/K) sum_k N(z; m_k, diag(exp(s_k))) with learned means and log-variances.

    Initialised to match N(0, I) in its first two moments, so that it starts where the standard
    prior is and is a fair baseline: means ~ N(0, 1/2), variances 1/2 (total variance 1 per
    dimension); means ~ N(0, 1) with unit variances would start twice as wide as N(0, I). The
    log-variances are free, not clipped like the encoder's."""

    def __init__(self, num_components: int = 500, **kwargs):
        super().__init__(num_components, **kwargs)
        # made now, so that their seeds come from the global seed in the order the layers are made
        self._means_init = keras.initializers.RandomNormal(stddev=np.sqrt(0.5))
        self._logvars_init = keras.initializers.Constant(np.log(0.5))

    def build(self, latent_shape):
        super().build(latent_shape)
        shape = (self.num_components, self.latent_dim)
        self.means = self.add_weight(shape=shape, name="means", initializer=self._means_init)
        self.logvars = self.add_weight(shape=shape, name="logvars", initializer=self._logvars_init)

    def params(self):
        return self.means, self.logvars


@keras.saving.register_keras_serializable(package="vae_lib")
class VampPrior(MixturePrior):
    """p(z) = (1/K) sum_k q(z | u_k): the mixture of the model's variational posteriors at K
    pseudo-inputs u_k, which are learned with the model.

    ``pseudo_inputs_initializer``: their initial values, shaped like the model's inputs (flat or
    H x W x C): a Keras initializer; the default is the paper's for binarized MNIST, near-empty
    images N(0.05, 0.01^2); the paper uses N(0.5, 0.02^2) for Caltech 101 and Frey Faces.
    ``value_range``: they are clipped into it (a hardtanh, as in the paper's code; the data's
    range), or used as they are with None. ``trainable=False`` keeps them fixed (the prior has no
    other weights). :meth:`from_data` starts them at training images instead.
    """

    def __init__(self, num_components: int = 500, pseudo_inputs_initializer=None,
                 value_range=(0.0, 1.0), **kwargs):
        super().__init__(num_components, **kwargs)
        if pseudo_inputs_initializer is None:
            pseudo_inputs_initializer = keras.initializers.RandomNormal(mean=0.05, stddev=0.01)
        self._initial_values = None
        if isinstance(pseudo_inputs_initializer, np.ndarray):
            self._initial_values = np.asarray(pseudo_inputs_initializer, np.float32)
            if len(self._initial_values) != self.num_components:
                raise ConfigError(f"{len(self._initial_values)} initial pseudo-inputs given for "
                                  f"K={self.num_components} components.")
            pseudo_inputs_initializer = keras.initializers.Constant(self._initial_values)
        self.pseudo_inputs_initializer = keras.initializers.get(pseudo_inputs_initializer)
        self.value_range = None if value_range is None else tuple(float(v) for v in value_range)

    @classmethod
    def from_data(cls, images, num_components: int = 500, trainable: bool = False,
                  noise_std: float | None = None, seed: int = 0, **kwargs) -> "VampPrior":
        """K random images (drawn without replacement with ``seed``, kept in their order) as the
        pseudo-inputs: fixed (``trainable=False``, the default, as the reference report ran
        "VampPrior-data"), or learned from there (``trainable=True``, as the paper's code
        ``--use_training_data_init`` runs it, with N(0, ``noise_std``^2) noise added first;
        ``noise_std`` defaults to 0.01 then, as in that code, and to 0 for fixed ones)."""
        images = np.asarray(images)
        num_components = check_count("number of components", num_components)
        if len(images) < num_components:
            raise ConfigError(f"A VampPrior from data with K={num_components} needs at least "
                              f"{num_components} images to use as pseudo-inputs, has {len(images)}.")
        rng = np.random.default_rng(seed)
        chosen = images[np.sort(rng.choice(len(images), num_components, replace=False))]
        noise_std = (DATA_INIT_NOISE_STD if trainable else 0.0) if noise_std is None else noise_std
        if noise_std:
            chosen = chosen + noise_std * rng.standard_normal(chosen.shape)
        return cls(num_components, pseudo_inputs_initializer=np.asarray(chosen, np.float32),
                   trainable=trainable, **kwargs)

    def build_inputs(self, data_shape):
        data_shape = tuple(int(d) for d in data_shape)
        if self._initial_values is not None and self._initial_values.shape[1:] != data_shape:
            raise ConfigError(f"The initial pseudo-inputs have shape {self._initial_values.shape[1:]}, "
                              f"the model's inputs {data_shape}.")
        self.pseudo_inputs_raw = self.add_weight(
            shape=(self.num_components, *data_shape), initializer=self.pseudo_inputs_initializer,
            name="pseudo_inputs")

    def pseudo_inputs(self):
        """The pseudo-inputs u_k as the encoder sees them (clipped into ``value_range``)."""
        if self.value_range is None:
            return ops.convert_to_tensor(self.pseudo_inputs_raw)
        return ops.clip(self.pseudo_inputs_raw, *self.value_range)  # hardtanh

    def encoder_inputs(self):
        return self.pseudo_inputs()

    def params(self):
        raise ConfigError("The VampPrior's components are the model's encoder at the pseudo-inputs: "
                          "pass params=model.prior_params() (the model's log_weights, sample and "
                          "estimators do).")

    def get_config(self):
        # Initial values taken from data are not kept (they can be large, and a loaded model's
        # pseudo-inputs come from its saved weights).
        initializer = ("zeros" if self._initial_values is not None
                       else keras.initializers.serialize(self.pseudo_inputs_initializer))
        return {**super().get_config(), "pseudo_inputs_initializer": initializer,
                "value_range": self.value_range}


# The paper's code initialises data-based pseudo-inputs with training images plus this noise
# (utils/load_data.py, --use_training_data_init) and then learns them.
DATA_INIT_NOISE_STD = 0.01
