"""The paper's networks: linear and gated layers with its two weight initialisations, MLPs, the
Gaussian heads of q(z|x), q(z2|x) and p(z1|z2), and MLP decoders. Any Keras layer or model can
stand in for them (see :class:`vae_lib.VAE`); these reproduce the paper's architecture.

Every network maps (..., D_in) inputs through a 2-D view, so each layer stays one plain matmul
(the fastest form on a CPU), and returns float32 outputs, so densities are computed in float32
also under a Keras mixed-precision policy.
"""
from __future__ import annotations

import contextlib
import math

import keras
from keras import ops

from . import backend
from .errors import check_choice

LOGVAR_RANGE = (-6.0, 2.0)  # Gaussian log-variances, clipped (hardtanh) as in the paper's code
ACTIVATIONS = ("gated", "relu")
# "glorot": Glorot/Xavier uniform weights (Keras' default; a layer of several blocks draws each
# block as the separate layer it stands for), zero biases.
# "he": the paper's code (utils/nn.py he_init): weights ~ N(0, 2 / fan_in), biases as PyTorch's
# nn.Linear leaves them, ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
WEIGHT_INITS = ("glorot", "he")


@keras.saving.register_keras_serializable(package="vae_lib")
class Linear(keras.layers.Layer):
    """y = x W + b with ``blocks`` side-by-side outputs of ``units / blocks`` each (one matmul for
    what would be several layers of the same input, e.g. the two halves of a gated layer).

    ``matmul_dtype`` (None: the inputs' own) is the type the matmul's inputs are rounded to, with
    float32 accumulation; :func:`matmul_inputs` sets it for a model while a function is traced."""

    def __init__(self, units: int, init: str = "glorot", blocks: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.units, self.init, self.blocks = units, check_choice("weight init", init, WEIGHT_INITS), blocks
        self.matmul_dtype = None

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
        dtype = self.matmul_dtype
        if dtype is not None and dtype != "float32" and keras.backend.standardize_dtype(x.dtype) == "float32":
            product = backend.matmul_rounded(x, self.kernel, dtype)
        else:
            product = ops.matmul(x, self.kernel)
        return product + self.bias

    def get_config(self):
        return {**super().get_config(), "units": self.units, "init": self.init, "blocks": self.blocks}


@contextlib.contextmanager
def matmul_inputs(model, dtype):
    """Inside, every :class:`Linear` layer of ``model`` rounds its matmul inputs (activations and
    weights) to ``dtype`` and accumulates in float32 when it is traced; biases and everything after
    the matmul stay float32. For the importance sampler's bfloat16 option (faster on CPUs with
    AVX512-BF16; binary images only, see :class:`vae_lib.estimators.ImportanceSampler`)."""
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, Linear)]
    saved = [layer.matmul_dtype for layer in layers]
    for layer in layers:
        layer.matmul_dtype = keras.backend.standardize_dtype(dtype)
    try:
        yield
    finally:
        for layer, value in zip(layers, saved):
            layer.matmul_dtype = value


class Composite(keras.layers.Layer):
    """A layer made of layers that create their weights on its first call. A loaded model runs
    it once (the model's build), so it keeps no build config of its own to replay."""

    def get_build_config(self):
        return None


@keras.saving.register_keras_serializable(package="vae_lib")
class GatedDense(Composite):
    """h = (W x + b) * sigmoid(W' x + b'), the paper's gated layer; one matmul for both halves."""

    def __init__(self, units, init="glorot", **kwargs):
        super().__init__(**kwargs)
        self.units, self.init = units, init
        self.linear = Linear(2 * units, init, blocks=2)

    def call(self, x):
        h, gate = ops.split(self.linear(x), 2, axis=-1)
        return h * ops.sigmoid(gate)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "init": self.init}


@keras.saving.register_keras_serializable(package="vae_lib")
class ReluDense(Composite):
    """h = relu(W x + b)."""

    def __init__(self, units, init="glorot", **kwargs):
        super().__init__(**kwargs)
        self.units, self.init = units, init
        self.linear = Linear(units, init)

    def call(self, x):
        return ops.relu(self.linear(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "init": self.init}


def hidden_layer(units: int, activation: str, init: str) -> keras.layers.Layer:
    check_choice("activation", activation, ACTIVATIONS)
    return GatedDense(units, init) if activation == "gated" else ReluDense(units, init)


@keras.saving.register_keras_serializable(package="vae_lib")
class MLP(Composite):
    """``num_layers`` hidden layers of ``hidden_units``: (N, D_in) -> (N, hidden_units)."""

    def __init__(self, hidden_units: int = 300, num_layers: int = 2, activation: str = "gated",
                 init: str = "glorot", **kwargs):
        super().__init__(**kwargs)
        self.hidden_units, self.num_layers, self.activation, self.init = hidden_units, num_layers, activation, init
        self.hidden = [hidden_layer(hidden_units, activation, init) for _ in range(num_layers)]

    def call(self, x):
        for layer in self.hidden:
            x = layer(x)
        return x

    def get_config(self):
        return {**super().get_config(), "hidden_units": self.hidden_units, "num_layers": self.num_layers,
                "activation": self.activation, "init": self.init}


def apply_2d(fn, x):
    """fn on (..., D) inputs through a 2-D view; outputs get the same leading shape back."""
    lead = ops.shape(x)[:-1]
    outputs = fn(ops.reshape(x, (-1, x.shape[-1])))
    return keras.tree.map_structure(lambda y: ops.reshape(y, (*lead, y.shape[-1])), outputs)


def as_float32(*tensors):
    """The networks' outputs in float32 (no-ops unless a mixed-precision policy is set)."""
    return tuple(ops.cast(t, "float32") for t in tensors)


@keras.saving.register_keras_serializable(package="vae_lib")
class GaussianHead(Composite):
    """h -> (mean, logvar) of a diagonal Gaussian, log-variances clipped to LOGVAR_RANGE."""

    def __init__(self, dim: int, init: str = "glorot", **kwargs):
        super().__init__(**kwargs)
        self.dim, self.init = dim, init
        self.params = Linear(2 * dim, init, blocks=2)

    def call(self, h):
        mean, logvar = as_float32(*ops.split(self.params(h), 2, axis=-1))
        return mean, ops.clip(logvar, *LOGVAR_RANGE)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "init": self.init}


@keras.saving.register_keras_serializable(package="vae_lib")
class GaussianMLP(Composite):
    """x -> MLP -> (mean, logvar): the encoder q(z|x) of the VAE, and q(z2|x), p(z1|z2) of the HVAE."""

    def __init__(self, dim, hidden_units=300, num_layers=2, activation="gated", init="glorot", **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.body = MLP(hidden_units, num_layers, activation, init, name="mlp")
        self.head = GaussianHead(dim, init, name="gaussian")

    def call(self, x):
        return apply_2d(lambda x2: self.head(self.body(x2)), x)

    def get_config(self):
        body = self.body
        return {**super().get_config(), "dim": self.dim, "hidden_units": body.hidden_units,
                "num_layers": body.num_layers, "activation": body.activation, "init": body.init}


@keras.saving.register_keras_serializable(package="vae_lib")
class MLPDecoder(Composite):
    """z -> MLP -> ``outputs`` numbers in ``blocks`` side-by-side blocks (the likelihood's
    parameters: one block of pixel logits, or the discretized logistic's two): p(x|z) of the VAE."""

    def __init__(self, outputs, blocks=1, hidden_units=300, num_layers=2, activation="gated",
                 init="glorot", **kwargs):
        super().__init__(**kwargs)
        self.outputs, self.blocks = outputs, blocks
        self.body = MLP(hidden_units, num_layers, activation, init, name="mlp")
        self.head = Linear(outputs, init, blocks=blocks, name="params")

    def call(self, z):
        return apply_2d(lambda z2: as_float32(self.head(self.body(z2)))[0], z)

    def get_config(self):
        body = self.body
        return {**super().get_config(), "outputs": self.outputs, "blocks": self.blocks,
                "hidden_units": body.hidden_units, "num_layers": body.num_layers,
                "activation": body.activation, "init": body.init}


@keras.saving.register_keras_serializable(package="vae_lib")
class TwoInputMLP(Composite):
    """[a, b] -> one hidden layer each, concatenated, -> one more hidden layer: the paper's HVAE
    block for q(z1|x, z2) and p(x|z1, z2). ``a`` may have fewer leading axes than ``b`` (x against
    (S, B) samples of z2): its layer then runs once per image and is broadcast over the samples."""

    broadcasts_samples = True  # see HVAE: [x, z2] may come with z2 of shape (S, B, Z)

    def __init__(self, hidden_units=300, activation="gated", init="glorot", **kwargs):
        super().__init__(**kwargs)
        self.hidden_units, self.activation, self.init = hidden_units, activation, init
        self.from_a = hidden_layer(hidden_units, activation, init)
        self.from_b = hidden_layer(hidden_units, activation, init)
        self.joint = hidden_layer(hidden_units, activation, init)

    def call(self, inputs):
        a, b = inputs
        ha = apply_2d(self.from_a, a)
        hb = apply_2d(self.from_b, b)
        ha = ha + ops.zeros_like(hb)  # broadcast over the samples; keeps the static shape
        return apply_2d(self.joint, ops.concatenate([ha, hb], axis=-1))

    def get_config(self):
        return {**super().get_config(), "hidden_units": self.hidden_units,
                "activation": self.activation, "init": self.init}


@keras.saving.register_keras_serializable(package="vae_lib")
class TwoInputGaussian(Composite):
    """[x, z2] -> TwoInputMLP -> (mean, logvar): q(z1|x, z2) of the HVAE."""

    broadcasts_samples = True

    def __init__(self, dim, hidden_units=300, activation="gated", init="glorot", **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.body = TwoInputMLP(hidden_units, activation, init, name="mlp")
        self.head = GaussianHead(dim, init, name="gaussian")

    def call(self, inputs):
        return apply_2d(self.head, self.body(inputs))

    def get_config(self):
        body = self.body
        return {**super().get_config(), "dim": self.dim, "hidden_units": body.hidden_units,
                "activation": body.activation, "init": body.init}


@keras.saving.register_keras_serializable(package="vae_lib")
class TwoInputMLPDecoder(Composite):
    """[z1, z2] -> TwoInputMLP -> the likelihood's parameters (as :class:`MLPDecoder`): p(x|z1, z2)
    of the HVAE."""

    broadcasts_samples = True

    def __init__(self, outputs, blocks=1, hidden_units=300, activation="gated", init="glorot", **kwargs):
        super().__init__(**kwargs)
        self.outputs, self.blocks = outputs, blocks
        self.body = TwoInputMLP(hidden_units, activation, init, name="mlp")
        self.head = Linear(outputs, init, blocks=blocks, name="params")

    def call(self, inputs):
        return apply_2d(lambda h: as_float32(self.head(h))[0], self.body(inputs))

    def get_config(self):
        body = self.body
        return {**super().get_config(), "outputs": self.outputs, "blocks": self.blocks,
                "hidden_units": body.hidden_units, "activation": body.activation, "init": body.init}
