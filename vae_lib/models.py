"""Latent-variable models: Keras models that own their distributions and their log-weights. The
estimators (:mod:`vae_lib.estimators`) and the training step only reduce what these methods return:

``elbo_terms(x, seed)``
    per image, one draw z ~ q(z|x): the distortion -log p(x|z) and the rate
    log q(z|x) - log p(z) (the closed-form KL instead, where the model uses it). Training weighs
    the rate by the KL warm-up weight beta; ELBO = -(distortion + rate).
``log_weights(x, seed, num_samples, prior_params=None)``
    (S, B) log p(x, z_s) - log q(z_s|x) for S draws z_s ~ q(z|x); their logsumexp - log S is the
    importance-sampled log p(x) (the IWAE bound).
``prior_params()``
    the prior's parameters, computed once per evaluation and passed back to ``log_weights``
    (the VampPrior's K pseudo-inputs are then encoded once, not once per pass).
``reconstruct(x)``, ``sample(n, seed)``
    mean images, for figures.

Training is Keras' own: ``compile`` and ``fit`` run :meth:`LatentVariableModel.train_step`. On
TensorFlow it takes one :meth:`~LatentVariableModel.gradient_step`, and the paper-protocol trainer
of :mod:`vae_lib.pipeline` runs that same method, so the two cannot drift apart; on JAX it is the
same loss through Keras' stateless API. A new model is one new class here that implements the four
methods above, in ``keras.ops`` (then it runs on both backends).
"""
from __future__ import annotations

import os
import random
import weakref

import keras
import numpy as np
from keras import ops

from . import backend
from . import likelihoods as likelihoods_lib
from .densities import log_normal_diag, reparameterize
from .errors import ConfigError, DataError
from .priors import Prior
from .seeds import stateless_seed, stream_key


def gaussian_params(output):
    """(mean, logvar) from a Gaussian network's output: a pair, or one tensor of 2Z numbers split in
    half (means first). In float32."""
    if isinstance(output, (tuple, list)):
        if len(output) != 2:
            raise ConfigError(f"A Gaussian network must return (mean, logvar) or one tensor of 2Z "
                              f"numbers; this one returned {len(output)} tensors.")
        mean, logvar = output
    else:
        if output.shape[-1] is not None and output.shape[-1] % 2:
            raise ConfigError(f"A Gaussian network that returns one tensor must give 2Z numbers "
                              f"(means, then log-variances); this one gives {output.shape[-1]}.")
        mean, logvar = ops.split(output, 2, axis=-1)
    return ops.cast(mean, "float32"), ops.cast(logvar, "float32")


def with_lead(tensor, lead):
    """``tensor`` of shape (N, ...) reshaped to (*lead, ...): N rows back on the leading axes they
    were flattened from."""
    return ops.reshape(tensor, (*lead, *ops.shape(tensor)[1:]))


def flat_rows(tensor, num_lead: int):
    """``tensor`` of shape (*lead, ...) with its ``num_lead`` leading axes flattened into one."""
    return ops.reshape(tensor, (-1, *ops.shape(tensor)[num_lead:]))


def images_of(data):
    """The images of a batch as ``fit`` passes it: x, (x,), (x, y) or (x, y, weights)."""
    return data[0] if isinstance(data, (tuple, list)) else data


class LatentVariableModel(keras.Model):
    """What every model shares: an injected prior on its (top) latent, a likelihood, the joint
    encoder pass, the mapping of (S, B) sample axes through networks that see (N, ...) batches,
    and Keras' training and test steps.

    ``seed``: the stream of the training noise (step t draws from [seed, t]) and of the
    evaluation's; None draws one from Keras' global random state (``keras.utils.set_random_seed``).
    """

    def __init__(self, prior: Prior, likelihood="bernoulli", seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(prior, Prior):
            raise ConfigError(f"prior must be a vae_lib prior (StandardNormal, VampPrior, "
                              f"MixtureOfGaussians, ...), got {type(prior).__name__}.")
        owner = prior.__dict__.get("_vae_lib_owner")  # (kept off Keras' tracked attributes)
        if prior.holds_weights and owner is not None and owner() is not None:
            raise ConfigError(f"This {type(prior).__name__} already belongs to another model: a prior "
                              f"with weights (pseudo-inputs, mixture means) is built for one model. "
                              f"Make a new prior for each model, e.g. vae_lib.{type(prior).__name__}"
                              f"({getattr(prior, 'num_components', '')}).")
        prior.__dict__["_vae_lib_owner"] = weakref.ref(self)
        self.prior = prior
        self.likelihood = likelihoods_lib.get(likelihood)
        # None: a seed from Python's random state, which keras.utils.set_random_seed sets (drawn
        # here, before any layer is built, as Keras draws its initializers' seeds)
        self.seed = int(random.randint(1, 2**31 - 1) if seed is None else seed)
        self.kl_weight = self.add_weight(shape=(), initializer="ones", trainable=False, name="kl_weight")
        self.test_noise = keras.random.SeedGenerator(backend.generator_seed(stream_key(self.seed, "valid")))
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.distortion_tracker = keras.metrics.Mean(name="distortion")
        self.rate_tracker = keras.metrics.Mean(name="rate")
        self.data_shape = None

    # -- the maths a model implements -------------------------------------------------------------
    def top_encoder(self, x, training=False):
        """(mean, logvar) of the latent the prior is on, given x."""
        raise NotImplementedError

    def elbo_terms(self, x, seed, training=False):
        """Per image: the distortion and the rate of one draw (``training``: the networks run as
        they train, e.g. batch normalisation on the batch's statistics)."""
        raise NotImplementedError

    def log_weights(self, x, seed, num_samples, prior_params=None):
        raise NotImplementedError

    def reconstruct(self, x):
        raise NotImplementedError

    def sample(self, n, seed=None):
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------
    def encode_with_prior(self, x, training=False):
        """(mean, logvar) of the top latent for a batch, and the prior's params. A prior built on the
        encoder (the VampPrior) has its inputs encoded in the same pass as the batch: one (B+K)-row
        matmul per layer runs faster on a CPU than a B-row and a K-row one, with the same numbers."""
        extra = self.prior.encoder_inputs()
        if extra is None:
            mean, logvar = self.top_encoder(x, training)
            return mean, logvar, self.prior.params()
        n = ops.shape(x)[0]
        mean, logvar = self.top_encoder(ops.concatenate([x, extra], axis=0), training)
        return mean[:n], logvar[:n], (mean[n:], logvar[n:])

    def prior_params(self):
        """The prior's parameters as the model is now (the VampPrior: the encoder at its pseudo-inputs)."""
        extra = self.prior.encoder_inputs()
        return self.prior.params() if extra is None else self.top_encoder(extra)

    def map_samples(self, network, z, training=False):
        """``network`` on z of shape (..., Z), through a (N, Z) batch: the outputs come back with
        z's leading axes ((S, B) samples of the importance sampler)."""
        lead = ops.shape(z)[:-1]
        outputs = network(flat_rows(z, len(lead)), training=training)
        return keras.tree.map_structure(lambda y: with_lead(y, lead), outputs)

    def decode(self, network, z, training=False):
        """The likelihood's parameters for latents of shape (..., Z): (..., *data_shape) each."""
        lead = ops.shape(z)[:-1]
        params = self.likelihood.params(network(flat_rows(z, len(lead)), training=training), self.data_shape)
        return keras.tree.map_structure(lambda y: with_lead(y, lead), params)

    def seed_tensor(self, seed, purpose="samples"):
        """A stateless seed pair from a pair, an int (that seed's ``purpose`` stream) or None (this
        model's own ``purpose`` stream)."""
        if seed is None:
            seed = self.seed
        if isinstance(seed, (int, np.integer)):
            return stateless_seed(int(seed), purpose, 0)
        return seed

    def noise_seed(self, purpose, counter):
        """[stream_key(seed, purpose), counter]: the stateless seed of one draw."""
        return backend.seed_pair(stream_key(self.seed, purpose), counter)

    # -- Keras ----------------------------------------------------------------------------------
    def build(self, input_shape):
        """Create every weight for inputs of ``input_shape`` (batch axis first; flat or
        image-shaped): the prior's pseudo-inputs first, then the encoder, the prior's own weights
        once the latent size is known, and the decoder."""
        self.data_shape = tuple(int(d) for d in input_shape[1:])
        self.prior.build_inputs(self.data_shape)
        x = ops.zeros((1, *self.data_shape))
        self._build_networks(x)
        self.built = True

    def ensure_built(self, x):
        """Build the model for inputs like ``x`` if it is not built yet (``fit``, ``evaluate``
        and the estimators call this, as Keras builds a model on its first batch); a DataError if
        it is built for images of another shape."""
        if not self.built:
            self.build((None, *x.shape[1:]))
        else:
            self.check_shape(x.shape)

    def check_shape(self, shape):
        """A DataError unless images of ``shape`` (batch axis first) have the shape per image
        that the model was built for (dimensions not known yet pass)."""
        given = tuple(shape[1:])
        if self.data_shape is None or None in given or given == self.data_shape:
            return
        size = int(np.prod(self.data_shape))
        reshape = (f" Reshape them: images.reshape(-1, {', '.join(map(str, self.data_shape))})."
                   if int(np.prod(given)) == size else "")
        raise DataError(f"These images have shape {given} each; the model was built for images of "
                        f"shape {self.data_shape}.{reshape}")

    def check_images(self, images) -> np.ndarray:
        """``images`` as a float32 array, checked before a long computation: their shape per
        image against the built model's, their pixels against the likelihood's range (see
        :meth:`vae_lib.likelihoods.Likelihood.check_values`). Builds nothing."""
        images = np.asarray(images, np.float32)
        if self.built:
            self.check_shape(images.shape)
        self.likelihood.check_values(images)
        return images

    def _build_networks(self, x):
        raise NotImplementedError

    def _build_top(self, x):
        """The top encoder on x (and the prior's encoder inputs), then the prior: the latent's
        (mean, logvar) for x."""
        extra = self.prior.encoder_inputs()
        mean, logvar = self.top_encoder(x if extra is None else ops.concatenate([x, extra], axis=0))
        self.prior.build(mean.shape)
        return mean[:1], logvar[:1]

    def get_build_config(self):
        return {"input_shape": (None, *self.data_shape)} if self.data_shape is not None else None

    def build_from_config(self, config):
        if config and not self.built:
            self.build(config["input_shape"])

    def call(self, x):
        """The reconstruction of x (the decoder's mean at the encoder's mean)."""
        self.ensure_built(x)
        return self.reconstruct(x)

    @property
    def metrics(self):
        return [self.loss_tracker, self.distortion_tracker, self.rate_tracker]

    def training_loss(self, x, seed, beta):
        """The training loss of the batch ``x``: the mean over images of distortion + ``beta`` x
        rate with the noise of ``seed``; returns it with the per-image distortion and rate."""
        distortion, rate = self.elbo_terms(x, seed, training=True)
        return ops.mean(distortion + beta * rate), distortion, rate

    def gradient_step(self, x, seed, beta):
        """One optimizer step on the batch ``x`` that minimises :meth:`training_loss`. Returns the
        loss and the per-image distortion and rate. On TensorFlow, ``fit`` (through
        :meth:`train_step`) and the paper-protocol trainer both run it; JAX's ``fit`` takes the
        same step statelessly."""
        if backend.NAME != "tensorflow":
            raise ConfigError(f"gradient_step updates variables in place, which the {backend.NAME} "
                              f"backend does not do inside a compiled step: train with fit().")
        import tensorflow as tf

        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            loss, distortion, rate = self.training_loss(x, seed, beta)
            scaled = self.optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        return loss, distortion, rate

    def train_step(self, *args):
        """One step of ``fit``: the noise of optimizer step t is the ``train`` stream at t, and the
        rate is weighed by ``kl_weight`` (1 unless a :class:`vae_lib.KLWarmup` callback sets it).
        Logs ``loss`` (distortion + kl_weight x rate), ``distortion`` (-log p(x|z)) and ``rate``
        (the KL term), each the mean over images in nats. (Keras calls it with the batch on
        TensorFlow, with its state and the batch on JAX.)"""
        if backend.NAME == "jax":
            return self._stateless_train_step(*args)
        x = ops.convert_to_tensor(images_of(args[0]), "float32")
        self.ensure_built(x)
        seed = self.noise_seed("train", self.optimizer.iterations)
        _, distortion, rate = self.gradient_step(x, seed, self.kl_weight)
        return self._log(distortion, rate, self.kl_weight)

    def test_step(self, *args):
        """``evaluate`` and ``fit``'s validation: ``loss`` is the negative ELBO (the rate at weight
        1, whatever the warm-up), the criterion of the paper's early stopping."""
        if backend.NAME == "jax":
            return self._stateless_test_step(*args)
        x = ops.convert_to_tensor(images_of(args[0]), "float32")
        self.ensure_built(x)
        distortion, rate = self.elbo_terms(x, backend.as_seed(self.test_noise.next()))
        return self._log(distortion, rate, 1.0)

    # -- JAX: the same steps on explicit state (Keras' stateless training API) -------------------
    def _stateless_train_step(self, state, data):
        import jax

        trainable, non_trainable, optimizer_values, metric_values = state
        x = ops.convert_to_tensor(images_of(data), "float32")
        fixed = list(zip(self.non_trainable_variables, non_trainable))
        with keras.StatelessScope(state_mapping=fixed + list(zip(self.optimizer.variables, optimizer_values))):
            seed = self.noise_seed("train", self.optimizer.iterations.value)
            beta = self.kl_weight.value

        def scaled_loss(trainable_values):
            mapping = list(zip(self.trainable_variables, trainable_values)) + fixed
            with keras.StatelessScope(state_mapping=mapping) as scope:
                loss, distortion, rate = self.training_loss(x, seed, beta)
            updated = [scope.get_current_value(v) for v in self.non_trainable_variables]
            with keras.StatelessScope(state_mapping=list(zip(self.optimizer.variables, optimizer_values))):
                scaled = self.optimizer.scale_loss(loss)
            return scaled, (distortion, rate, updated)

        (_, (distortion, rate, updated)), grads = jax.value_and_grad(scaled_loss, has_aux=True)(trainable)
        non_trainable = [old if new is None else new for old, new in zip(non_trainable, updated)]
        trainable, optimizer_values = self.optimizer.stateless_apply(optimizer_values, grads, trainable)
        logs, metric_values = self._stateless_log(metric_values, distortion, rate, beta)
        return logs, (trainable, non_trainable, optimizer_values, metric_values)

    def _stateless_test_step(self, state, data):
        trainable, non_trainable, metric_values = state
        x = ops.convert_to_tensor(images_of(data), "float32")
        variables = self.trainable_variables + self.non_trainable_variables
        with keras.StatelessScope(state_mapping=list(zip(variables, trainable + non_trainable))) as scope:
            distortion, rate = self.elbo_terms(x, backend.as_seed(self.test_noise.next()))
        non_trainable = [old if scope.get_current_value(v) is None else scope.get_current_value(v)
                         for v, old in zip(self.non_trainable_variables, non_trainable)]
        logs, metric_values = self._stateless_log(metric_values, distortion, rate, 1.0)
        return logs, (trainable, non_trainable, metric_values)

    def _stateless_log(self, metric_values, distortion, rate, beta):
        with keras.StatelessScope(state_mapping=list(zip(self.metrics_variables, metric_values))) as scope:
            logs = self._log(distortion, rate, beta)
        return logs, [old if scope.get_current_value(v) is None else scope.get_current_value(v)
                      for v, old in zip(self.metrics_variables, metric_values)]

    def fit(self, x=None, *args, **kwargs):
        """Keras' ``fit``. Images given as one array (no ``y``, weights or ``validation_split``)
        are fed on TensorFlow through :func:`vae_lib.backend.array_batches`, as are validation
        images given as an array or ``(array,)``: the same batches, sizes and per-epoch
        shuffling as Keras' own array adapter, without its threads taking cores from the
        training step. Image arrays are checked first (:meth:`check_images`)."""
        if isinstance(x, np.ndarray):
            self.check_images(x)
        valid = images_of(kwargs.get("validation_data"))
        if isinstance(valid, np.ndarray):
            self.check_images(valid)
        if not args and self._feeds_arrays(x, kwargs):
            batch_size = kwargs.pop("batch_size", None) or 32
            x = backend.array_batches(x, batch_size, kwargs.pop("shuffle", True))
            kwargs["shuffle"] = False  # (the batches come shuffled, or not, as asked)
            valid = kwargs.get("validation_data")
            if isinstance(valid, (tuple, list)) and len(valid) == 1:
                valid = valid[0]
            if isinstance(valid, np.ndarray):
                valid_batch = kwargs.pop("validation_batch_size", None) or batch_size
                kwargs["validation_data"] = backend.array_batches(valid, valid_batch, False)
        return super().fit(x, *args, **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        """Keras' ``evaluate`` (the loss is the negative ELBO, see :meth:`test_step`); an image
        array is checked first (:meth:`check_images`)."""
        if isinstance(x, np.ndarray):
            self.check_images(x)
        return super().evaluate(x, *args, **kwargs)

    def save(self, filepath, *args, **kwargs):
        """Keras' ``save``, to a ``.keras`` file. An HDF5 path is refused: Keras would write the
        file, but could not load this library's models back from it."""
        if isinstance(filepath, (str, os.PathLike)) and str(filepath).endswith((".h5", ".hdf5")):
            raise ConfigError(f"Save this model to a .keras file (model.save("
                              f"{os.path.splitext(str(filepath))[0] + '.keras'!r})): Keras cannot load it "
                              f"back from HDF5. model.save_weights('x.weights.h5') saves its weights alone.")
        return super().save(filepath, *args, **kwargs)

    @staticmethod
    def _feeds_arrays(x, kwargs) -> bool:
        plain = all(kwargs.get(key) is None for key in ("y", "sample_weight", "class_weight", "steps_per_epoch"))
        return (backend.array_batches is not None and isinstance(x, np.ndarray) and plain
                and not kwargs.get("validation_split") and kwargs.get("shuffle", True) in (True, False))

    def _log(self, distortion, rate, beta):
        self.loss_tracker.update_state(distortion + beta * rate)
        self.distortion_tracker.update_state(distortion)
        self.rate_tracker.update_state(rate)
        return {m.name: m.result() for m in self.metrics}

    def get_config(self):
        return {"name": self.name, "prior": keras.saving.serialize_keras_object(self.prior),
                "likelihood": keras.saving.serialize_keras_object(self.likelihood), "seed": self.seed}


@keras.saving.register_keras_serializable(package="vae_lib")
class VAE(LatentVariableModel):
    """q(z|x) = N(encoder(x)), p(x|z) = the likelihood at decoder(z), p(z) = the prior.

    ``encoder``: any Keras layer or model from images (flat or H x W x C) to (mean, logvar), or to
    one tensor of 2Z numbers split in half. ``decoder``: any Keras layer or model from z (N, Z) to
    the likelihood's parameters (see :mod:`vae_lib.likelihoods`). ``likelihood``: "bernoulli",
    "discretized_logistic" or a :class:`~vae_lib.likelihoods.Likelihood`.
    ``closed_form_kl``: where the prior has a closed-form KL (the standard prior), the rate is that
    KL instead of its single-sample Monte Carlo estimate (same expectation, less noise). The
    paper's code uses the Monte Carlo estimate for every prior (``closed_form_kl=False``)."""

    def __init__(self, encoder, decoder, prior: Prior, likelihood="bernoulli",
                 closed_form_kl: bool = True, seed: int | None = None, **kwargs):
        super().__init__(prior, likelihood, seed, **kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.closed_form_kl = bool(closed_form_kl)
        self.use_closed_form_kl = self.closed_form_kl and prior.has_closed_form_kl

    def top_encoder(self, x, training=False):
        return gaussian_params(self.encoder(x, training=training))

    def _build_networks(self, x):
        mean, _ = self._build_top(x)
        self.decode(self.decoder, mean)

    def elbo_terms(self, x, seed, training=False):
        mean, logvar, params = self.encode_with_prior(x, training)
        z = reparameterize(mean, logvar, seed)
        distortion = -self.likelihood.log_prob(x, self.decode(self.decoder, z, training))
        if self.use_closed_form_kl:
            rate = self.prior.closed_form_kl(mean, logvar)
        else:
            rate = log_normal_diag(z, mean, logvar) - self.prior.log_prob(z, params)
        return distortion, rate

    def log_weights(self, x, seed, num_samples, prior_params=None):
        if prior_params is None:
            mean, logvar, prior_params = self.encode_with_prior(x)
        else:
            mean, logvar = self.top_encoder(x)
        z = reparameterize(mean, logvar, seed, num_samples)  # (S, B, Z)
        return (self.likelihood.log_prob(x, self.decode(self.decoder, z))
                + self.prior.log_prob(z, prior_params) - log_normal_diag(z, mean, logvar))

    def reconstruct(self, x):
        mean, _ = self.top_encoder(x)
        return self.likelihood.mean(self.decode(self.decoder, mean))

    def sample(self, n, seed=None):
        """``n`` mean images of z ~ p(z), from a stateless seed pair, an int, or None (this
        model's own "samples" stream)."""
        z = self.prior.sample(n, self.seed_tensor(seed), self.prior_params())
        return self.likelihood.mean(self.decode(self.decoder, z))

    def get_config(self):
        return {**super().get_config(), "encoder": keras.saving.serialize_keras_object(self.encoder),
                "decoder": keras.saving.serialize_keras_object(self.decoder),
                "closed_form_kl": self.closed_form_kl}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder", "prior", "likelihood"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


@keras.saving.register_keras_serializable(package="vae_lib")
class HVAE(LatentVariableModel):
    """The paper's two-level hierarchical VAE (models/HVAE_2level.py in the paper's code):

        q(z1, z2 | x) = q(z2 | x) q(z1 | x, z2),   p(x, z1, z2) = p(x | z1, z2) p(z1 | z2) p(z2),

    with the prior on the top latent z2 (the VampPrior encodes its pseudo-inputs with q(z2|.)).
    ``q_z2``, ``p_z1``: networks to (mean, logvar) as a VAE's encoder; ``q_z1`` takes [x, z2] and
    ``p_x`` takes [z1, z2] (two inputs, as a Keras model with two inputs is called). Networks that
    say ``broadcasts_samples = True`` (the paper's MLPs) get x against (S, B) samples of z2 as they
    are, and run x's branch once per image; others get x repeated per sample. One draw of (z2, z1)
    from q per sample; all rates are Monte Carlo estimates."""

    def __init__(self, q_z2, q_z1, p_z1, p_x, prior: Prior, likelihood="bernoulli",
                 seed: int | None = None, **kwargs):
        super().__init__(prior, likelihood, seed, **kwargs)
        self.q_z2, self.q_z1, self.p_z1, self.p_x = q_z2, q_z1, p_z1, p_x

    def top_encoder(self, x, training=False):
        return gaussian_params(self.q_z2(x, training=training))

    def q_z1_params(self, x, z2, training=False):
        """(mean, logvar) of q(z1 | x, z2) for z2 of shape (..., B, Z): (S, B) samples, or B."""
        return gaussian_params(self._two_inputs(self.q_z1, x, z2, True, training))

    def p_x_params(self, z1, z2, x=None, training=False):
        """The likelihood's parameters of p(x | z1, z2), with z1's and z2's leading shape (``x``:
        the images scored, which only an autoregressive decoder reads)."""
        out = self._two_inputs(self.p_x, z1, z2, False, training)
        lead = ops.shape(z2)[:-1]
        flat = keras.tree.map_structure(lambda y: flat_rows(y, len(lead)), out)
        params = self.likelihood.params(flat, self.data_shape)
        return keras.tree.map_structure(lambda y: with_lead(y, lead), params)

    @staticmethod
    def _two_inputs(network, a, b, a_per_image, training=False):
        """``network([a, b])`` for b of shape (..., B, Z) and a of the same leading shape, or, with
        ``a_per_image``, of shape (B, ...) alone (x); the output has b's leading shape. A network
        with ``broadcasts_samples`` gets a and b as they are; others get x repeated per sample and
        (N, ...) batches."""
        if getattr(network, "broadcasts_samples", False):
            return network([a, b], training=training)
        lead = ops.shape(b)[:-1]
        if a_per_image and len(lead) > 1:
            a = ops.broadcast_to(a, (*lead, *ops.shape(a)[1:]))  # x repeated per sample
        out = network([flat_rows(a, len(lead)), flat_rows(b, len(lead))], training=training)
        return keras.tree.map_structure(lambda y: with_lead(y, lead), out)

    def _build_networks(self, x):
        mean2, _ = self._build_top(x)
        mean1, _ = self.q_z1_params(x, mean2)
        gaussian_params(self.map_samples(self.p_z1, mean2))
        self.p_x_params(mean1, mean2, x)

    def _log_px_and_log_ratio(self, x, seed, num_samples, prior_params, training=False):
        """log p(x|z1, z2) and log p(z1, z2) - log q(z1, z2|x) for draws (z2, z1) ~ q."""
        if prior_params is None:
            mean2, logvar2, prior_params = self.encode_with_prior(x, training)
        else:
            mean2, logvar2 = self.top_encoder(x)
        seed2, seed1 = backend.split_seed(seed, 2)
        z2 = reparameterize(mean2, logvar2, seed2, num_samples)
        mean1, logvar1 = self.q_z1_params(x, z2, training)
        z1 = reparameterize(mean1, logvar1, seed1)
        p_mean1, p_logvar1 = gaussian_params(self.map_samples(self.p_z1, z2, training))
        log_q = log_normal_diag(z1, mean1, logvar1) + log_normal_diag(z2, mean2, logvar2)
        log_p = log_normal_diag(z1, p_mean1, p_logvar1) + self.prior.log_prob(z2, prior_params)
        return self.likelihood.log_prob(x, self.p_x_params(z1, z2, x, training)), log_p - log_q

    def elbo_terms(self, x, seed, training=False):
        log_px, log_ratio = self._log_px_and_log_ratio(x, seed, None, None, training)
        return -log_px, -log_ratio

    def log_weights(self, x, seed, num_samples, prior_params=None):
        log_px, log_ratio = self._log_px_and_log_ratio(x, seed, num_samples, prior_params)
        return log_px + log_ratio

    def reconstruct(self, x):
        z2, _ = self.top_encoder(x)
        z1, _ = self.q_z1_params(x, z2)
        return self.likelihood.mean(self.p_x_params(z1, z2))

    def sample(self, n, seed=None):
        seed2, seed1 = backend.split_seed(self.seed_tensor(seed), 2)
        z2 = self.prior.sample(n, seed2, self.prior_params())
        z1 = reparameterize(*gaussian_params(self.map_samples(self.p_z1, z2)), seed1)
        return self.likelihood.mean(self.p_x_params(z1, z2))

    def get_config(self):
        nets = {k: keras.saving.serialize_keras_object(getattr(self, k)) for k in ("q_z2", "q_z1", "p_z1", "p_x")}
        return {**super().get_config(), **nets}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("q_z2", "q_z1", "p_z1", "p_x", "prior", "likelihood"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def load_model(path):
    """``keras.saving.load_model`` for a saved model of this library, with a clear error for a file
    that is missing, cut short or not a ``.keras`` archive (Keras' own names only the zip format)."""
    import zipfile
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; a model is saved to and loaded from one .keras file "
                          f"(model.save('model.keras')).")
    if not path.is_file():
        name = str(path) if path.suffix == ".keras" else f"{path}.keras"
        raise ConfigError(f"No model file at {path}. Save one with model.save({name!r}) and load that file.")
    if path.suffix in (".h5", ".hdf5"):
        raise ConfigError(f"{path} is an HDF5 file; this library's models load from .keras files "
                          f"(model.save('x.keras')). Weights saved with save_weights load with "
                          f"model.load_weights.")
    try:
        with zipfile.ZipFile(path) as archive:
            names, broken = archive.namelist(), archive.testzip()
    except (zipfile.BadZipFile, OSError) as err:
        raise ConfigError(f"{path} is not a complete .keras file ({err}): it was cut short while it "
                          f"was written or copied, or it is another kind of file. Save the model "
                          f"again.") from None
    if broken is not None or "config.json" not in names:
        raise ConfigError(f"{path} is not a complete .keras file ({broken or 'no config.json'} is "
                          f"damaged or missing). Save the model again.")
    return keras.saving.load_model(path)


@keras.saving.register_keras_serializable(package="vae_lib")
class ConvHVAE(HVAE):
    """The paper's convolutional two-level HVAE (models/convHVAE_2level.py in its code) for images of
    shape ``data_shape`` (H, W, C), given flat or shaped: q(z2|x) five gated convolutions,
    q(z1|x, z2) five more beside a gated dense layer for z2, p(z1|z2) two gated dense layers of
    300, p(x|z1, z2) gated dense layers to an image and four gated convolutions
    (:mod:`vae_lib.convnets`). Both latents have ``latent_dim`` dimensions; the prior is on z2."""

    rows_per_pass = 1024  # importance sampling: (image, sample) pairs a pass (conv activations are large)

    def __init__(self, prior: Prior, likelihood="bernoulli", data_shape=(28, 28, 1), latent_dim: int = 40,
                 seed: int | None = None, **kwargs):
        from .convnets import ConvGaussianEncoder, ConvTwoInputGaussian
        from .networks import GaussianMLP

        lik = likelihoods_lib.get(likelihood)
        image_shape = tuple(int(d) for d in data_shape)
        if len(image_shape) != 3:
            raise ConfigError(f"data_shape is (height, width, channels), got {data_shape}.")
        super().__init__(ConvGaussianEncoder(latent_dim, name="q_z2"), ConvTwoInputGaussian(latent_dim, name="q_z1"),
                         GaussianMLP(latent_dim, name="p_z1"), self.decoder_for(image_shape, lik), prior, lik,
                         seed, **kwargs)
        self.image_shape, self.latent_size = image_shape, int(latent_dim)

    @staticmethod
    def decoder_for(image_shape, likelihood):
        from .convnets import ConvDecoder

        return ConvDecoder(image_shape, likelihood.params_per_pixel, name="p_x")

    def as_images(self, x):
        """x, flat or shaped, as (N, H, W, C) images."""
        return ops.reshape(x, (ops.shape(x)[0], *self.image_shape))

    def top_encoder(self, x, training=False):
        return gaussian_params(self.q_z2(self.as_images(x), training=training))

    def q_z1_params(self, x, z2, training=False):
        return gaussian_params(self._two_inputs(self.q_z1, self.as_images(x), z2, True, training))

    def get_config(self):
        return {"name": self.name, "prior": keras.saving.serialize_keras_object(self.prior),
                "likelihood": keras.saving.serialize_keras_object(self.likelihood), "seed": self.seed,
                "data_shape": self.image_shape, "latent_dim": self.latent_size}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("prior", "likelihood"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


@keras.saving.register_keras_serializable(package="vae_lib")
class PixelHVAE(ConvHVAE):
    """The paper's PixelHVAE (models/PixelHVAE_2level.py in its code): the convolutional HVAE's
    encoders and p(z1|z2), with p(x|z1, z2) a PixelCNN (:class:`vae_lib.convnets.PixelCNNDecoder`)
    over the pixels in raster order. Its log-likelihood is scored with the image itself as the
    PixelCNN's input (teacher forcing); its samples and reconstructions are drawn pixel by pixel,
    each pixel from the conditional that scores it. Batch normalisation in the PixelCNN uses the
    batch's statistics in training steps only, its moving averages everywhere else."""

    @staticmethod
    def decoder_for(image_shape, likelihood):
        from .convnets import PixelCNNDecoder

        return PixelCNNDecoder(image_shape, likelihood.params_per_pixel, name="p_x")

    def p_x_params(self, z1, z2, x=None, training=False):
        if x is None:
            raise ConfigError("The PixelHVAE's p(x|z1, z2) is autoregressive: it scores an image x "
                              "(teacher forcing); draw images with sample() or reconstruct().")
        lead = ops.shape(z2)[:-1]
        images = self.as_images(x)  # (B, H, W, C), broadcast over (S, B) samples of the latents
        images = ops.broadcast_to(images, (*lead, *self.image_shape))
        flat = lambda t: flat_rows(t, len(lead))
        out = self.p_x([flat(images), flat(z1), flat(z2)], training=training)
        params = self.likelihood.params(out, self.data_shape)
        return keras.tree.map_structure(lambda y: with_lead(y, lead), params)

    def draw_pixels(self, z1, z2, seed):
        """Images for latents (N, Z), drawn pixel by pixel in raster order, each pixel from its
        conditional given the pixels drawn before it; and each pixel's conditional mean given those
        (a picture of what the PixelCNN expects there): (images, means), in the inputs' shape."""
        height, width, channels = self.image_shape
        canvas = ops.zeros((ops.shape(z1)[0], *self.image_shape))
        means = canvas
        seeds = backend.split_seed(backend.as_seed(seed), height * width)
        step = self._draw_step
        for index in range(height * width):
            canvas, means = step(z1, z2, canvas, means, ops.convert_to_tensor(index), seeds[index])
        shaped = lambda t: ops.reshape(t, (ops.shape(t)[0], *self.data_shape))
        return shaped(canvas), shaped(means)

    @property
    def _draw_step(self):
        """One pixel of :meth:`draw_pixels`, compiled once per model (a pass of the PixelCNN)."""
        if "_draw_step_fn" not in self.__dict__:  # kept off Keras' tracked attributes
            height, width, channels = self.image_shape

            def step(z1, z2, canvas, means, index, seed):
                image = lambda t: ops.reshape(t, (-1, *self.image_shape))
                params = keras.tree.map_structure(image, self.p_x_params(z1, z2, canvas))
                i, j = index // width, index % width
                pixel = self.likelihood.draw(keras.tree.map_structure(lambda t: t[:, i, j], params), seed)
                where = ops.reshape(ops.one_hot(index, height * width), (1, height, width, 1))
                mean_here = self.likelihood.mean(params)
                return (canvas * (1 - where) + where * ops.reshape(pixel, (-1, 1, 1, channels)),
                        means * (1 - where) + where * mean_here)

            self.__dict__["_draw_step_fn"] = backend.compile_function(step, self, jit_compile=False)
        return self.__dict__["_draw_step_fn"]

    def reconstruct(self, x):
        z2, _ = self.top_encoder(x)
        z1, _ = self.q_z1_params(x, z2)
        return self.draw_pixels(z1, z2, backend.seed_pair(0, 0))[1]

    def sample(self, n, seed=None):
        seed2, seed1, seed_x = backend.split_seed(self.seed_tensor(seed), 3)
        z2 = self.prior.sample(n, seed2, self.prior_params())
        z1 = reparameterize(*gaussian_params(self.map_samples(self.p_z1, z2)), seed1)
        return self.draw_pixels(z1, z2, seed_x)[1]
