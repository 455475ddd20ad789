"""Likelihoods p(x | .): how a decoder's output is read as a distribution over images.

A likelihood holds no weights. The decoder outputs unconstrained numbers; ``params`` turns them into
the distribution's parameters (shaped like the images), ``log_prob`` scores images under them (one
value per image: every pixel summed) and ``mean`` gives the expected image, for figures. Both models
call the likelihood, so any decoder (a ``keras.Sequential`` of ``Dense`` or ``Conv2DTranspose``
layers) works as long as it outputs ``params_per_pixel`` numbers per pixel: in one tensor whose size
matches (flat, or image-shaped with the parameters side by side on the last axis), or, for two
parameters, as a pair of tensors.
"""
from __future__ import annotations

import math
import warnings

import keras
import numpy as np
from keras import ops

from . import backend
from .densities import log_bernoulli, log_discretized_logistic
from .errors import ConfigError, DataError, check_choice, check_count

LOG_SCALE_RANGE = (-4.5, 0.0)  # discretized-logistic log-scales, clipped as in the paper's code


class Likelihood:
    """Interface. ``params(output, event_shape)``: the decoder's output for N inputs -> parameters
    of shape (N, *event_shape) each; ``log_prob(x, params)``: images (B, *event_shape) against
    parameters (..., B, *event_shape) -> (..., B); ``mean(params)``: (N, *event_shape)."""

    name = None  # the string that names it (see :func:`get`)
    params_per_pixel = 1

    def params(self, output, event_shape):
        raise NotImplementedError

    def log_prob(self, x, params):
        raise NotImplementedError

    def mean(self, params):
        raise NotImplementedError

    def draw(self, params, seed):
        """Pixels drawn from the distribution at ``params`` (any shape), from a stateless seed."""
        raise NotImplementedError

    def check_values(self, images: np.ndarray) -> None:
        """A DataError if ``images`` (an array) hold a NaN pixel. A likelihood over a range (both
        of this module's score pixels in [0, 1]) checks that too: a raw 0-255 pixel would give NaN
        or meaningless nats."""
        if images.size and np.isnan(np.min(images)):
            raise self._nan_error()

    def _label(self) -> str:
        return self.name or type(self).__name__

    def _nan_error(self) -> DataError:
        return DataError(f"These images contain NaN pixels; the {self._label()} likelihood cannot score them.")

    def _check_unit_range(self, images):
        """As :meth:`check_values` of this base class, and every pixel in [0, 1] (one pass each for
        the lowest and the highest pixel; a NaN makes the lowest NaN)."""
        if not images.size:
            return
        low = float(np.min(images))
        if math.isnan(low):
            raise self._nan_error()
        high = float(np.max(images))
        if not (0.0 <= low and high <= 1.0):
            hint = " Divide 8-bit images by 255." if 1.0 < high <= 255.0 and low >= 0.0 else ""
            raise DataError(f"The {self._label()} likelihood scores pixels in [0, 1]; these images "
                            f"have pixels from {low:g} to {high:g}.{hint}")

    def check_output(self, output, event_shape) -> None:
        """A ConfigError if a decoder's output (one tensor or a pair, N rows) cannot hold
        ``params_per_pixel`` numbers per pixel of images of ``event_shape``. Static shapes only."""
        pixels = math.prod(event_shape)
        parts = list(output) if isinstance(output, (tuple, list)) else [output]
        per_part = pixels if len(parts) > 1 else pixels * self.params_per_pixel
        for part in parts:
            sizes = tuple(part.shape[1:])
            if None not in sizes and math.prod(sizes) != per_part:
                raise ConfigError(
                    f"The decoder gives {math.prod(sizes)} numbers per image (shape {sizes}); the "
                    f"{self._label()} likelihood needs {self.params_per_pixel} per "
                    f"pixel, {pixels * self.params_per_pixel} for images of shape {tuple(event_shape)}"
                    f"{' (or two tensors of ' + str(pixels) + ')' if self.params_per_pixel == 2 else ''}.")

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self), tuple(sorted(self.get_config().items()))))


def _as_event(tensor, event_shape):
    """(N, ...) -> (N, *event_shape), float32 (a decoder under a mixed-precision policy outputs
    bfloat16; densities are computed in float32)."""
    tensor = ops.cast(tensor, "float32")
    if tuple(tensor.shape[1:]) == tuple(event_shape):
        return tensor
    return ops.reshape(tensor, (ops.shape(tensor)[0], *event_shape))


def _sum_event(log_p, event_rank: int):
    """Sum the last ``event_rank`` axes (the pixels of each image)."""
    return ops.sum(log_p, axis=tuple(range(-event_rank, 0))) if event_rank > 1 else ops.sum(log_p, -1)


@keras.saving.register_keras_serializable(package="vae_lib")
class Bernoulli(Likelihood):
    """Independent Bernoulli pixels (binary images); the decoder outputs their logits."""

    name = "bernoulli"

    def params(self, output, event_shape):
        self.check_output(output, event_shape)
        return _as_event(output, event_shape)

    def log_prob(self, x, logits):
        rank = len(x.shape) - 1
        if rank == 1:
            return log_bernoulli(x, logits)
        return _sum_event(x * logits - ops.softplus(logits), rank)

    def mean(self, logits):
        return ops.sigmoid(logits)

    def draw(self, logits, seed):
        u = backend.uniform(ops.shape(logits), seed)
        return ops.cast(u < ops.sigmoid(logits), "float32")

    def check_values(self, images):
        """As :meth:`Likelihood.check_values`, and a warning for grey levels: under a Bernoulli
        likelihood they give a cross-entropy, not the log-likelihood of binary images."""
        self._check_unit_range(images)
        if np.any((images != 0) & (images != 1)):
            warnings.warn("These images have grey levels, not only 0 and 1: the Bernoulli "
                          "likelihood scores them as a cross-entropy, not as binary images' "
                          "log-likelihood. Binarize them first (each pixel ~ Bernoulli(grey "
                          "level); the paper does so afresh at every step for dynamic MNIST).",
                          UserWarning, stacklevel=4)


@keras.saving.register_keras_serializable(package="vae_lib")
class DiscretizedLogistic(Likelihood):
    """A logistic per pixel discretized into ``num_bins`` grey levels x = k / (num_bins - 1), the
    first and last bins open-ended (see :func:`vae_lib.densities.log_discretized_logistic`). The
    decoder outputs two numbers per pixel: the location before a sigmoid (so the mean lies in
    [0, 1]) and the log-scale before its clip to [-4.5, 0] (as in the paper's code)."""

    name = "discretized_logistic"
    params_per_pixel = 2

    def __init__(self, num_bins: int = 256):
        self.num_bins = check_count("number of bins of a discretized logistic", num_bins, 2)

    def params(self, output, event_shape):
        self.check_output(output, event_shape)
        if isinstance(output, (tuple, list)):
            loc, log_scale = output
        else:
            loc, log_scale = ops.split(output, 2, axis=-1)
        loc, log_scale = _as_event(loc, event_shape), _as_event(log_scale, event_shape)
        return ops.sigmoid(loc), ops.clip(log_scale, *LOG_SCALE_RANGE)

    def log_prob(self, x, params):
        mean, log_scale = params
        rank = len(x.shape) - 1
        if rank == 1:
            return log_discretized_logistic(x, mean, log_scale, self.num_bins)
        # the density sums its last axis: give it the pixels of each image on one axis
        flat = lambda t: ops.reshape(t, (*ops.shape(t)[:-rank], -1))
        return log_discretized_logistic(flat(x), flat(mean), flat(log_scale), self.num_bins)

    def mean(self, params):
        return params[0]

    def draw(self, params, seed):
        """A logistic draw, rounded to the nearest of the grey levels (the open-ended first and
        last bins take everything below and above)."""
        mean, log_scale = params
        u = backend.uniform(ops.shape(mean), seed, minval=1e-6, maxval=1 - 1e-6)
        y = mean + ops.exp(log_scale) * (ops.log(u) - ops.log1p(-u))
        levels = self.num_bins - 1
        return ops.clip(ops.round(y * levels), 0.0, levels) / levels

    def check_values(self, images):
        """A DataError unless every pixel lies in [0, 1] (grey levels k / (num_bins - 1))."""
        self._check_unit_range(images)

    def get_config(self):
        return {"num_bins": self.num_bins}


LIKELIHOODS = {cls.name: cls for cls in (Bernoulli, DiscretizedLogistic)}


def get(likelihood) -> Likelihood:
    """A :class:`Likelihood` from itself or its name ("bernoulli", "discretized_logistic"), as
    Keras resolves ``optimizer="adam"``."""
    if isinstance(likelihood, Likelihood):
        return likelihood
    return LIKELIHOODS[check_choice("likelihood", likelihood, LIKELIHOODS)]()
