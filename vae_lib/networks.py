"""The networks: linear and gated layers with the two weight initialisations, MLPs, Gaussian heads
for q(z|.) and p(z1|z2), and the likelihood heads p(x|.) (Bernoulli, discretized logistic).

Every network maps (..., D_in) inputs through a 2-D view, so each layer stays one plain matmul
(the fastest form on a CPU; importance sampling feeds (S, B, D) latents), and returns float32
outputs, so densities are computed in float32 also under a Keras mixed-precision policy.
"""
from __future__ import annotations

import contextlib
import math

import keras
import tensorflow as tf

from .densities import log_bernoulli, log_discretized_logistic
from .errors import check_choice
from .pipeline.registry import ACTIVATIONS, WEIGHT_INITS

LOGVAR_RANGE = (-6.0, 2.0)  # Gaussian log-variances, clipped (hardtanh) as in the paper's code
LOG_SCALE_RANGE = (-4.5, 0.0)  # discretized-logistic log-scales, likewise


_MATMUL_INPUTS = [tf.float32]  # the dtype Linear layers round their matmul inputs to, while tracing


@contextlib.contextmanager
def matmul_inputs(dtype):
    """Inside, every Linear layer traced rounds its matmul inputs (activations and weights) to
    ``dtype`` and accumulates in float32 (tf.matmul's output_type): bfloat16 here runs the
    importance sampler about 1.4x faster on CPUs with AVX512-BF16, moving a trained model's mean
    test log-likelihood of binary images by at most about 0.01 nats (README, Speed;
    benchmarks/bf16_eval_check.json; not for the 8-bit likelihood:
    config.BFLOAT16_EVAL_LIKELIHOODS). Biases and everything after the
    matmul stay float32."""
    _MATMUL_INPUTS.append(tf.as_dtype(dtype))
    try:
        yield
    finally:
        _MATMUL_INPUTS.pop()


class Linear(keras.layers.Layer):
    """y = x W + b with ``blocks`` side-by-side outputs of ``units / blocks`` each (one matmul for
    what would be several layers of the same input, e.g. the two halves of a gated layer)."""

    def __init__(self, units: int, init: str = "glorot", blocks: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.units, self.init, self.blocks = units, check_choice("weight init", init, WEIGHT_INITS), blocks

    def build(self, input_shape):
        fan_in, fan_out = int(input_shape[-1]), self.units // self.blocks
        if self.init == "glorot":
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            kernel = keras.initializers.RandomUniform(-limit, limit)
            bias = "zeros"
        else:
            kernel = keras.initializers.RandomNormal(stddev=math.sqrt(2.0 / fan_in))
            bound = 1.0 / math.sqrt(fan_in)
            bias = keras.initializers.RandomUniform(-bound, bound)
        self.kernel = self.add_weight(shape=(fan_in, self.units), initializer=kernel, name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer=bias, name="bias")

    def call(self, x):
        dtype = _MATMUL_INPUTS[-1]
        if dtype != tf.float32 and x.dtype == tf.float32:
            product = tf.matmul(tf.cast(x, dtype), tf.cast(self.kernel, dtype), output_type=tf.float32)
        else:
            product = tf.matmul(x, self.kernel)
        return product + self.bias


class GatedDense(keras.layers.Layer):
    """h = (W x + b) * sigmoid(W' x + b'), the paper's gated layer; one matmul for both halves."""

    def __init__(self, units, init="glorot", **kwargs):
        super().__init__(**kwargs)
        self.linear = Linear(2 * units, init, blocks=2)

    def call(self, x):
        h, gate = tf.split(self.linear(x), 2, axis=-1)
        return h * tf.sigmoid(gate)


class Relu(keras.layers.Layer):
    def __init__(self, units, init="glorot", **kwargs):
        super().__init__(**kwargs)
        self.linear = Linear(units, init)

    def call(self, x):
        return tf.nn.relu(self.linear(x))


def hidden_layer(units: int, activation: str, init: str) -> keras.layers.Layer:
    check_choice("activation", activation, ACTIVATIONS)
    return GatedDense(units, init) if activation == "gated" else Relu(units, init)


class MLP(keras.layers.Layer):
    """``num_layers`` hidden layers of ``hidden_units``: (N, D_in) -> (N, units)."""

    def __init__(self, hidden_units: int, num_layers: int, activation: str, init: str = "glorot", **kwargs):
        super().__init__(**kwargs)
        self.hidden = [hidden_layer(hidden_units, activation, init) for _ in range(num_layers)]

    def call(self, x):
        for layer in self.hidden:
            x = layer(x)
        return x


def apply_2d(fn, x):
    """fn on (..., D) inputs through a 2-D view; outputs get the same leading shape back."""
    lead = tf.shape(x)[:-1]
    outputs = fn(tf.reshape(x, [-1, x.shape[-1]]))
    return tf.nest.map_structure(
        lambda y: tf.reshape(y, tf.concat([lead, tf.shape(y)[-1:]], 0)), outputs)


def as_float32(*tensors):
    """The networks' outputs in float32 (no-ops unless a mixed-precision policy is set)."""
    return tuple(tf.cast(t, tf.float32) for t in tensors)


class GaussianHead(keras.layers.Layer):
    """h -> (mean, logvar) of a diagonal Gaussian, log-variances clipped to LOGVAR_RANGE."""

    def __init__(self, dim: int, init: str = "glorot", **kwargs):
        super().__init__(**kwargs)
        self.params = Linear(2 * dim, init, blocks=2)

    def call(self, h):
        mean, logvar = as_float32(*tf.split(self.params(h), 2, axis=-1))
        return mean, tf.clip_by_value(logvar, *LOGVAR_RANGE)


class GaussianMLP(keras.layers.Layer):
    """input -> MLP -> (mean, logvar): the encoder q(z|x) of the VAE, and q(z2|x), p(z1|z2) of the HVAE."""

    def __init__(self, dim, hidden_units=300, num_layers=2, activation="gated", init="glorot", **kwargs):
        super().__init__(**kwargs)
        self.body = MLP(hidden_units, num_layers, activation, init, name="mlp")
        self.head = GaussianHead(dim, init, name="gaussian")

    def call(self, x):
        return apply_2d(lambda x2: self.head(self.body(x2)), x)


# -- likelihoods p(x | h): a head maps the decoder's last hidden layer to distribution parameters ---
class BernoulliHead(keras.layers.Layer):
    """h -> logits of independent Bernoulli pixels (binary images)."""

    def __init__(self, input_dim, init="glorot", **kwargs):
        super().__init__(**kwargs)
        self.logits = Linear(input_dim, init)

    def call(self, h):
        return as_float32(self.logits(h))[0]

    def log_prob(self, x, logits):
        return log_bernoulli(x, logits)

    def mean(self, logits):
        return tf.sigmoid(logits)


class DiscretizedLogisticHead(keras.layers.Layer):
    """h -> (mean, log_scale) of a discretized logistic per pixel over 256 grey levels."""

    def __init__(self, input_dim, init="glorot", **kwargs):
        super().__init__(**kwargs)
        self.params = Linear(2 * input_dim, init, blocks=2)

    def call(self, h):
        loc, log_scale = as_float32(*tf.split(self.params(h), 2, axis=-1))
        return tf.sigmoid(loc), tf.clip_by_value(log_scale, *LOG_SCALE_RANGE)

    def log_prob(self, x, params):
        return log_discretized_logistic(x, *params)

    def mean(self, params):
        return params[0]


LIKELIHOODS = {"bernoulli": BernoulliHead, "logistic256": DiscretizedLogisticHead}


def likelihood_head(likelihood: str, input_dim: int, init: str) -> keras.layers.Layer:
    return LIKELIHOODS[check_choice("likelihood", likelihood, LIKELIHOODS)](input_dim, init, name="likelihood")


class Decoder(keras.layers.Layer):
    """z -> MLP -> likelihood head: p(x|z) of the VAE."""

    def __init__(self, input_dim, likelihood, hidden_units=300, num_layers=2, activation="gated",
                 init="glorot", **kwargs):
        super().__init__(**kwargs)
        self.body = MLP(hidden_units, num_layers, activation, init, name="mlp")
        self.likelihood, self.head = likelihood, likelihood_head(likelihood, input_dim, init)

    def call(self, z):
        return apply_2d(lambda z2: self.head(self.body(z2)), z)

    def log_prob(self, x, z):
        return self.head.log_prob(x, self(z))

    def mean(self, z):
        return self.head.mean(self(z))


class TwoInputMLP(keras.layers.Layer):
    """(a, b) -> one hidden layer each, concatenated, -> one more hidden layer: the paper's HVAE
    block for q(z1|x, z2) and p(x|z1, z2). ``a`` may have fewer leading axes than ``b`` (x against
    (S, B) samples of z2): its layer then runs once per image and is broadcast over the samples."""

    def __init__(self, hidden_units=300, activation="gated", init="glorot", **kwargs):
        super().__init__(**kwargs)
        self.from_a = hidden_layer(hidden_units, activation, init)
        self.from_b = hidden_layer(hidden_units, activation, init)
        self.joint = hidden_layer(hidden_units, activation, init)

    def call(self, a, b):
        ha = apply_2d(self.from_a, a)
        hb = apply_2d(self.from_b, b)
        ha = ha + tf.zeros_like(hb)  # broadcast over the samples; keeps the static shape
        return apply_2d(self.joint, tf.concat([ha, hb], axis=-1))


class TwoInputGaussian(keras.layers.Layer):
    """(a, b) -> TwoInputMLP -> (mean, logvar): q(z1|x, z2) of the HVAE."""

    def __init__(self, dim, hidden_units=300, activation="gated", init="glorot", **kwargs):
        super().__init__(**kwargs)
        self.body = TwoInputMLP(hidden_units, activation, init, name="mlp")
        self.head = GaussianHead(dim, init, name="gaussian")

    def call(self, a, b):
        return apply_2d(self.head, self.body(a, b))


class TwoInputDecoder(keras.layers.Layer):
    """(z1, z2) -> TwoInputMLP -> likelihood head: p(x|z1, z2) of the HVAE."""

    def __init__(self, input_dim, likelihood, hidden_units=300, activation="gated", init="glorot",
                 **kwargs):
        super().__init__(**kwargs)
        self.body = TwoInputMLP(hidden_units, activation, init, name="mlp")
        self.likelihood, self.head = likelihood, likelihood_head(likelihood, input_dim, init)

    def call(self, z1, z2):
        return apply_2d(self.head, self.body(z1, z2))

    def log_prob(self, x, z1, z2):
        return self.head.log_prob(x, self(z1, z2))

    def mean(self, z1, z2):
        return self.head.mean(self(z1, z2))
