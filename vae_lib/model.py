"""The VAE: MLP encoder q(z|x), MLP decoder p(x|z), and an injected prior p(z)."""
from __future__ import annotations

import keras
import tensorflow as tf

from .densities import log_bernoulli, log_discretized_logistic
from .errors import ConfigError
from .priors import Prior

ACTIVATIONS = ("gated", "relu")
LIKELIHOODS = ("bernoulli", "logistic256")
LOGVAR_RANGE = (-6.0, 2.0)  # q(z|x) log-variances, clipped (hardtanh) as in the paper's code
LOG_SCALE_RANGE = (-4.5, 0.0)  # discretized-logistic log-scales, likewise


class GatedDense(keras.layers.Layer):
    """h = (W x + b) * sigmoid(W' x + b'), the paper's gated layer; one matmul for both halves."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.dense = keras.layers.Dense(2 * units)

    def call(self, x):
        h, gate = tf.split(self.dense(x), 2, axis=-1)
        return h * tf.sigmoid(gate)


class MLP(keras.layers.Layer):
    """``num_layers`` hidden layers of ``hidden_units``: (N, D_in) -> (N, units)."""

    def __init__(self, hidden_units: int, num_layers: int, activation: str, **kwargs):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ConfigError(f"Unknown activation {activation!r}. Choose one of: {', '.join(ACTIVATIONS)}.")
        self.hidden = [GatedDense(hidden_units) if activation == "gated"
                       else keras.layers.Dense(hidden_units, activation="relu")
                       for _ in range(num_layers)]

    def call(self, x):
        for layer in self.hidden:
            x = layer(x)
        return x


def apply_2d(fn, x):
    """fn on (..., D) inputs through a 2-D view: every layer stays one plain matmul, the fastest
    form on a CPU (importance sampling feeds (S, B, D) latents)."""
    lead = tf.shape(x)[:-1]
    outputs = fn(tf.reshape(x, [-1, x.shape[-1]]))
    return tf.nest.map_structure(
        lambda y: tf.reshape(y, tf.concat([lead, tf.shape(y)[-1:]], 0)), outputs)


def as_float32(*tensors):
    """The networks' outputs in float32: the densities are always computed in float32, also when
    the layers compute in bfloat16 under a Keras mixed-precision policy (no-ops otherwise)."""
    return tuple(tf.cast(t, tf.float32) for t in tensors)


class Encoder(keras.layers.Layer):
    """x -> (mean, logvar) of the diagonal Gaussian q(z|x)."""

    def __init__(self, latent_dim, hidden_units=300, num_layers=2, activation="gated", **kwargs):
        super().__init__(**kwargs)
        self.body = MLP(hidden_units, num_layers, activation, name="encoder_mlp")
        self.mean = keras.layers.Dense(latent_dim)
        self.logvar = keras.layers.Dense(latent_dim)

    def call(self, x):
        return apply_2d(self._params, x)

    def _params(self, x):
        h = self.body(x)
        mean, logvar = as_float32(self.mean(h), self.logvar(h))
        return mean, tf.clip_by_value(logvar, *LOGVAR_RANGE)


class BernoulliDecoder(keras.layers.Layer):
    """z -> logits of independent Bernoulli pixels."""

    def __init__(self, input_dim, hidden_units=300, num_layers=2, activation="gated", **kwargs):
        super().__init__(**kwargs)
        self.body = MLP(hidden_units, num_layers, activation, name="decoder_mlp")
        self.logits = keras.layers.Dense(input_dim)

    def call(self, z):
        return apply_2d(lambda z2: as_float32(self.logits(self.body(z2)))[0], z)

    def log_prob(self, x, z):
        return log_bernoulli(x, self(z))

    def mean(self, z):
        return tf.sigmoid(self(z))


class DiscretizedLogisticDecoder(keras.layers.Layer):
    """z -> (mean, log_scale) of a discretized logistic per pixel (256 grey levels)."""

    def __init__(self, input_dim, hidden_units=300, num_layers=2, activation="gated", **kwargs):
        super().__init__(**kwargs)
        self.body = MLP(hidden_units, num_layers, activation, name="decoder_mlp")
        self.loc = keras.layers.Dense(input_dim)
        self.log_scale = keras.layers.Dense(input_dim)

    def call(self, z):
        return apply_2d(self._params, z)

    def _params(self, z):
        h = self.body(z)
        loc, log_scale = as_float32(self.loc(h), self.log_scale(h))
        return tf.sigmoid(loc), tf.clip_by_value(log_scale, *LOG_SCALE_RANGE)

    def log_prob(self, x, z):
        return log_discretized_logistic(x, *self(z))

    def mean(self, z):
        return self(z)[0]


class VAE(keras.Model):
    """Holds encoder, decoder and prior; the estimators in :mod:`vae_lib.estimators` use it."""

    def __init__(self, encoder: Encoder, decoder, prior: Prior, input_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder, self.prior = encoder, decoder, prior
        self.input_dim = input_dim
        self.latent_dim = prior.latent_dim

    def build_all(self):
        """Create every weight (Keras builds layers lazily on their first call)."""
        x = tf.zeros([1, self.input_dim])
        z, _ = self.encoder(x)
        self.decoder(z)
        self.prior.log_prob(z)
        self.built = True
        return self

    def call(self, x):  # a reconstruction; training uses the estimators, not fit()
        mean, _ = self.encoder(x)
        return self.decoder.mean(mean)

    def log_px_given_z(self, x, z):
        return self.decoder.log_prob(x, z)

    def sample(self, n, seed):
        """Mean images of p(x|z) for n draws z ~ p(z)."""
        return self.decoder.mean(self.prior.sample(n, seed))


def build_vae(prior_name: str, input_dim: int, likelihood: str, *, latent_dim=40, hidden_units=300,
              num_layers=2, activation="gated", num_components=500, train_images=None,
              pseudo_init=(0.05, 0.01), trainable_pseudo_inputs=None, seed=0) -> VAE:
    from .priors import make_prior

    if likelihood not in LIKELIHOODS:
        raise ConfigError(f"Unknown likelihood {likelihood!r}. Choose one of: {', '.join(LIKELIHOODS)}.")
    keras.utils.set_random_seed(seed)  # the weights' initial values
    encoder = Encoder(latent_dim, hidden_units, num_layers, activation, name="encoder")
    decoder_cls = BernoulliDecoder if likelihood == "bernoulli" else DiscretizedLogisticDecoder
    decoder = decoder_cls(input_dim, hidden_units, num_layers, activation, name="decoder")
    prior = make_prior(prior_name, latent_dim, num_components=num_components, encoder=encoder,
                       input_dim=input_dim, train_images=train_images, pseudo_init=pseudo_init,
                       trainable_pseudo_inputs=trainable_pseudo_inputs, seed=seed)
    return VAE(encoder, decoder, prior, input_dim, name=f"vae_{prior_name}").build_all()

