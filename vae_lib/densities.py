"""Log-densities written in a few lines of ``keras.ops`` (any Keras backend), each tested against
scipy.stats.

All return one value per row: the last axis (latent dimensions or pixels) is summed.
"""
from __future__ import annotations

import math

from keras import ops

from . import backend
from .backend import RNG_ALG  # noqa: F401  (the pipeline's TensorFlow draws use it too)

LOG_2PI = math.log(2 * math.pi)


def log_normal_diag(x, mean, logvar):
    """log N(x; mean, diag(exp(logvar)))."""
    return -0.5 * ops.sum(LOG_2PI + logvar + ops.square(x - mean) * ops.exp(-logvar), axis=-1)


def log_standard_normal(x):
    return -0.5 * ops.sum(LOG_2PI + ops.square(x), axis=-1)


def kl_normal_standard(mean, logvar):
    """KL(N(mean, diag(exp(logvar))) || N(0, I)) in closed form."""
    return 0.5 * ops.sum(ops.exp(logvar) + ops.square(mean) - 1.0 - logvar, axis=-1)


def log_mixture_normal_diag(z, means, logvars):
    """log (1/K) sum_k N(z; means[k], diag(exp(logvars[k]))) for z of shape (..., D) and (K, D) params.

    The squared Mahalanobis distances to all K components are three matmuls,
    sum_d (z_d - m_kd)^2 / v_kd = z^2 @ (1/v)^T - 2 z @ (m/v)^T + sum_d m_kd^2 / v_kd,
    instead of a (..., K, D) broadcast: far less memory traffic, and matmuls use every core.
    The expansion cancels large terms when |m|^2 / v is large, so z and the means are first
    shifted by the components' mean (a shared per-dimension centre; the distances do not change):
    what is left is governed by the spread of the components around their centre, not by how far
    that centre lies from the origin (float32 error below 0.005 nats for unit spread, logvars down
    to -6; tests/test_densities.py). The error still grows with spread^2 / variance (about 0.05
    nats at spread 3 with every logvar at -6); on the trained priors of the paper runs (spreads up
    to 4.3 per dimension, logvars down to -6) it was at most 0.0002 nats against a float64 broadcast
    over 5000 posterior samples each.
    """
    centre = ops.stop_gradient(ops.mean(means, axis=0))  # any centre gives the same value
    means = means - centre
    precision = ops.exp(-logvars)  # (K, D)
    batch_shape = ops.shape(z)[:-1]
    z2d = ops.reshape(z, (-1, ops.shape(z)[-1])) - centre
    sq_dist = (backend.matmul_transposed(ops.square(z2d), precision)
               - 2.0 * backend.matmul_transposed(z2d, means * precision)
               + ops.sum(ops.square(means) * precision, axis=-1))  # (N, K)
    dim = ops.cast(ops.shape(means)[-1], z.dtype)
    log_components = -0.5 * (dim * LOG_2PI + ops.sum(logvars, axis=-1) + sq_dist)
    num_components = ops.cast(ops.shape(means)[0], z.dtype)
    log_p = ops.logsumexp(log_components, axis=-1) - ops.log(num_components)
    return ops.reshape(log_p, batch_shape)


def log_bernoulli(x, logits):
    """log Bernoulli(x; sigmoid(logits)), stable for large |logits|."""
    return ops.sum(x * logits - ops.softplus(logits), axis=-1)


def log_discretized_logistic(x, mean, log_scale, num_bins: int = 256):
    """Discretized logistic over ``num_bins`` grey levels, with x = k / (num_bins - 1) in [0, 1].

    Bin k covers x +- 1/(2 (num_bins - 1)); the first and last bins extend to -inf and +inf, so the
    probabilities of the bins sum to one (as in PixelCNN++).
    """
    half_bin = 0.5 / (num_bins - 1)
    centered = x - mean
    inv_scale = ops.exp(-log_scale)
    upper = inv_scale * (centered + half_bin)
    lower = inv_scale * (centered - half_bin)
    log_cdf_upper = upper - ops.softplus(upper)  # log sigmoid(upper), for the first bin
    log_survival_lower = -ops.softplus(lower)  # log (1 - sigmoid(lower)), for the last bin
    # log(sigmoid(upper) - sigmoid(lower)) without cancellation: sigmoid(a) - sigmoid(b) =
    # sigmoid(a) sigmoid(-b) (1 - exp(b - a)), which stays accurate far in either tail.
    log_mass = (upper - ops.softplus(upper) - ops.softplus(lower)
                + ops.log(-ops.expm1(lower - upper)))
    first = x < half_bin
    last = x > 1.0 - half_bin
    log_p = ops.where(first, log_cdf_upper, ops.where(last, log_survival_lower, log_mass))
    return ops.sum(log_p, axis=-1)


def reparameterize(mean, logvar, seed, num_samples=None):
    """z = mean + exp(logvar / 2) * eps, eps ~ N(0, I) from the stateless ``seed``; with
    ``num_samples`` S the result has shape (S, *mean.shape)."""
    shape = ops.shape(mean) if num_samples is None else (num_samples, *ops.shape(mean))
    eps = backend.normal(shape, seed, mean.dtype)
    return mean + ops.exp(0.5 * logvar) * eps
