"""The paper's convolutional networks (models/convHVAE_2level.py and models/PixelHVAE_2level.py in
its code): gated convolutions, masked convolutions for a PixelCNN, and the encoders and decoders of
the convolutional HVAE and the PixelHVAE (:class:`vae_lib.ConvHVAE`, :class:`vae_lib.PixelHVAE`).

Images are channels-last, (N, H, W, C). The encoders' two stride-2 layers take 28 x 28 images to
7 x 7 (Frey Faces' 28 x 20 to 7 x 5); "same" padding, as the paper's (k // 2). Convolutions keep
Keras' Glorot-uniform weights (a gated layer draws each half as the layer it stands for) and zero
biases; dense layers are :class:`vae_lib.networks.Linear`.
"""
from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from .networks import GatedDense, GaussianHead, as_float32


def _glorot_limit(kernel_size, in_channels, filters) -> float:
    receptive = int(np.prod(kernel_size))
    return math.sqrt(6.0 / (receptive * in_channels + receptive * filters))


@keras.saving.register_keras_serializable(package="vae_lib")
class GatedConv2D(keras.layers.Layer):
    """h = conv_h(x) * sigmoid(conv_g(x)), both halves in one convolution of 2 x ``filters``."""

    def __init__(self, filters: int, kernel_size: int, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = filters, kernel_size, strides

    def build(self, input_shape):
        limit = _glorot_limit((self.kernel_size,) * 2, int(input_shape[-1]), self.filters)
        self.conv = keras.layers.Conv2D(2 * self.filters, self.kernel_size, self.strides, padding="same",
                                        kernel_initializer=keras.initializers.RandomUniform(-limit, limit))
        self.conv.build(input_shape)

    def call(self, x):
        h, gate = ops.split(self.conv(x), 2, axis=-1)
        return h * ops.sigmoid(gate)

    def compute_output_shape(self, input_shape):
        return self.conv.compute_output_shape(input_shape)[:-1] + (self.filters,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides}


def causal_mask(kernel_size: int, in_channels: int, filters: int, mask_type: str) -> np.ndarray:
    """The (k, k, C_in, C_out) mask of a PixelCNN convolution: a pixel sees the rows above it and
    the pixels to its left in its row; type "A" (the first layer) not the pixel itself, type "B"
    (the later layers, whose inputs at a pixel already see only what came before it) the pixel
    too. As the paper's code, over every input channel (x and the latents' maps alike)."""
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}.")
    mask = np.ones((kernel_size, kernel_size, in_channels, filters), np.float32)
    centre = kernel_size // 2
    mask[centre, centre + (mask_type == "B"):] = 0
    mask[centre + 1:] = 0
    return mask


@keras.saving.register_keras_serializable(package="vae_lib")
class MaskedConv2D(keras.layers.Layer):
    """A PixelCNN convolution (stride 1, "same" padding, no bias) whose kernel is multiplied by
    :func:`causal_mask` at every call, so no weight can ever reach a pixel it must not see."""

    def __init__(self, filters: int, kernel_size: int = 3, mask_type: str = "B", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.mask_type = filters, kernel_size, mask_type
        causal_mask(1, 1, 1, mask_type)  # checks the type now

    def build(self, input_shape):
        channels = int(input_shape[-1])
        limit = _glorot_limit((self.kernel_size,) * 2, channels, self.filters)
        self.kernel = self.add_weight(shape=(self.kernel_size, self.kernel_size, channels, self.filters),
                                      initializer=keras.initializers.RandomUniform(-limit, limit), name="kernel")
        self.mask = causal_mask(self.kernel_size, channels, self.filters, self.mask_type)  # numpy: a constant of every trace

    def call(self, x):
        return ops.conv(x, self.kernel * self.mask, strides=1, padding="same")

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "mask_type": self.mask_type}


def _gated_stack(layers):
    return [GatedConv2D(filters, kernel, strides) for filters, kernel, strides in layers]


# q(z2|x) and q(z1|x, z2)'s image branch: (filters, kernel, stride) of the five gated convolutions
Q_Z2_CONVS = ((32, 7, 1), (32, 3, 2), (64, 5, 1), (64, 3, 2), (6, 3, 1))
Q_Z1_CONVS = ((32, 3, 1), (32, 3, 2), (64, 3, 1), (64, 3, 2), (6, 3, 1))


@keras.saving.register_keras_serializable(package="vae_lib")
class ConvGaussianEncoder(keras.layers.Layer):
    """x -> five gated convolutions -> flattened (6 x H/4 x W/4) -> (mean, logvar): q(z2|x) of the
    convolutional HVAE and the PixelHVAE; log-variances clipped to [-6, 2]."""

    def __init__(self, dim: int = 40, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.convs = _gated_stack(Q_Z2_CONVS)
        self.head = GaussianHead(dim, name="gaussian")

    def call(self, x):
        for conv in self.convs:
            x = conv(x)
        return self.head(ops.reshape(x, (ops.shape(x)[0], int(np.prod(x.shape[1:])))))

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


@keras.saving.register_keras_serializable(package="vae_lib")
class ConvTwoInputGaussian(keras.layers.Layer):
    """[x, z2] -> (mean, logvar) of q(z1|x, z2): x through five gated 3x3 convolutions and
    flattened, z2 through a gated dense layer to the same size, concatenated, a gated dense layer of
    ``hidden_units``. x's branch runs once per image and is broadcast over (S, B) samples of z2."""

    broadcasts_samples = True

    def __init__(self, dim: int = 40, hidden_units: int = 300, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.hidden_units = dim, hidden_units
        self.convs = _gated_stack(Q_Z1_CONVS)
        self.joint = GatedDense(hidden_units)
        self.head = GaussianHead(dim, name="gaussian")

    def build(self, input_shape):
        x_shape, _ = input_shape
        height, width = (-(-int(d) // 4) for d in x_shape[1:3])  # two stride-2 layers, "same" padding
        self.from_z2 = GatedDense(Q_Z1_CONVS[-1][0] * height * width)

    def call(self, inputs):
        x, z2 = inputs
        for conv in self.convs:
            x = conv(x)
        hx = ops.reshape(x, (ops.shape(x)[0], int(np.prod(x.shape[1:]))))  # (B, h)
        lead = ops.shape(z2)[:-1]
        hz = self.from_z2(ops.reshape(z2, (-1, z2.shape[-1])))
        hz = ops.reshape(hz, (*lead, hz.shape[-1]))
        hx = hx + ops.zeros_like(hz)  # broadcast over the samples
        h = ops.concatenate([hx, hz], axis=-1)
        out = self.head(self.joint(ops.reshape(h, (-1, h.shape[-1]))))
        return tuple(ops.reshape(t, (*lead, self.dim)) for t in out)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "hidden_units": self.hidden_units}


@keras.saving.register_keras_serializable(package="vae_lib")
class ConvDecoder(keras.layers.Layer):
    """[z1, z2] -> p(x|z1, z2) of the convolutional HVAE: z1 and z2 each through a gated dense layer of
    ``hidden_units``, concatenated, a gated dense layer to one image, four gated 3x3 convolutions of
    64 channels, and a 1x1 convolution to the likelihood's parameters (``params_per_pixel`` per
    channel, side by side on the last axis)."""

    def __init__(self, data_shape, params_per_pixel: int = 1, hidden_units: int = 300, **kwargs):
        super().__init__(**kwargs)
        self.data_shape, self.params_per_pixel = tuple(int(d) for d in data_shape), params_per_pixel
        self.hidden_units = hidden_units
        self.from_z1, self.from_z2 = GatedDense(hidden_units), GatedDense(hidden_units)
        self.to_image = GatedDense(int(np.prod(self.data_shape)))
        self.convs = _gated_stack(((64, 3, 1),) * 4)
        self.out = keras.layers.Conv2D(self.data_shape[-1] * params_per_pixel, 1)

    def call(self, inputs):
        z1, z2 = inputs
        h = self.to_image(ops.concatenate([self.from_z1(z1), self.from_z2(z2)], axis=-1))
        h = ops.reshape(h, (-1, *self.data_shape))
        for conv in self.convs:
            h = conv(h)
        return as_float32(self.out(h))[0]

    def get_config(self):
        return {**super().get_config(), "data_shape": self.data_shape,
                "params_per_pixel": self.params_per_pixel, "hidden_units": self.hidden_units}


@keras.saving.register_keras_serializable(package="vae_lib")
class PixelCNNDecoder(keras.layers.Layer):
    """[x, z1, z2] -> p(x|z1, z2) of the PixelHVAE, autoregressive over the pixels in raster order:
    z1 and z2 each through a gated dense layer to one image, concatenated with x as channels, eight
    masked 3x3 convolutions of 64 channels (one of type A, then seven of type B), each followed by
    batch normalisation and a ReLU, and a 1x1 convolution to the likelihood's parameters. The
    parameters at a pixel depend on x only at the pixels before it, so teacher forcing (x as it
    is) scores every pixel at once, and sampling goes pixel by pixel.

    Batch normalisation uses the batch's statistics while training and its moving averages
    otherwise (``training=False``: evaluation, importance sampling, sampling), so that a pixel's
    parameters never depend on the other images of a batch when they are scored."""

    def __init__(self, data_shape, params_per_pixel: int = 1, filters: int = 64, num_layers: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.data_shape, self.params_per_pixel = tuple(int(d) for d in data_shape), params_per_pixel
        self.filters, self.num_layers = filters, num_layers
        pixels = int(np.prod(self.data_shape))
        self.from_z1, self.from_z2 = GatedDense(pixels), GatedDense(pixels)
        self.masked = [MaskedConv2D(filters, 3, "A" if i == 0 else "B") for i in range(num_layers)]
        # PyTorch's BatchNorm2d defaults, as in the paper's code
        self.norms = [keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5) for _ in range(num_layers)]
        self.out = keras.layers.Conv2D(self.data_shape[-1] * params_per_pixel, 1)

    def call(self, inputs, training=False):
        x, z1, z2 = inputs
        image = lambda t: ops.reshape(t, (-1, *self.data_shape))
        h = ops.concatenate([x, image(self.from_z1(z1)), image(self.from_z2(z2))], axis=-1)
        for conv, norm in zip(self.masked, self.norms):
            h = ops.relu(norm(conv(h), training=training))
        return as_float32(self.out(h))[0]

    def get_config(self):
        return {**super().get_config(), "data_shape": self.data_shape, "params_per_pixel": self.params_per_pixel,
                "filters": self.filters, "num_layers": self.num_layers}
