"""Log-densities of vae_lib.densities against scipy.stats, closed forms and numerical integration."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from scipy import integrate, stats
from scipy.special import log_expit, logsumexp

from vae_lib.densities import (kl_normal_standard, log_bernoulli, log_discretized_logistic,
                               log_mixture_normal_diag, log_normal_diag, log_standard_normal)


def _np(t):
    return np.asarray(t.numpy() if hasattr(t, "numpy") else t)


def test_log_normal_diag_matches_scipy_norm():
    """Reference: sum over dimensions of scipy.stats.norm.logpdf, float64."""
    rng = np.random.default_rng(0)
    x, mean = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    logvar = rng.uniform(-6, 2, size=(7, 5))
    expected = stats.norm.logpdf(x, mean, np.exp(0.5 * logvar)).sum(-1)
    got = _np(log_normal_diag(tf.constant(x), tf.constant(mean), tf.constant(logvar)))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_log_normal_diag_broadcasts_samples_against_images():
    """z of shape (S, B, D) against parameters of shape (B, D) gives (S, B); reference scipy."""
    rng = np.random.default_rng(1)
    z = rng.normal(size=(3, 4, 6))
    mean, logvar = rng.normal(size=(4, 6)), rng.uniform(-2, 1, size=(4, 6))
    expected = stats.norm.logpdf(z, mean[None], np.exp(0.5 * logvar)[None]).sum(-1)
    got = _np(log_normal_diag(tf.constant(z), tf.constant(mean), tf.constant(logvar)))
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_log_standard_normal_matches_scipy():
    z = np.random.default_rng(2).normal(scale=3, size=(2, 9, 40))
    expected = stats.norm.logpdf(z).sum(-1)
    np.testing.assert_allclose(_np(log_standard_normal(tf.constant(z))), expected, rtol=1e-12)


def test_log_bernoulli_matches_scipy():
    """Moderate logits: scipy.stats.bernoulli.logpmf with p = sigmoid(logit)."""
    rng = np.random.default_rng(3)
    logits = rng.uniform(-15, 15, size=(6, 50))
    x = rng.integers(0, 2, size=(6, 50)).astype(np.float64)
    expected = stats.bernoulli.logpmf(x, 1 / (1 + np.exp(-logits))).sum(-1)
    np.testing.assert_allclose(_np(log_bernoulli(tf.constant(x), tf.constant(logits))), expected,
                               rtol=1e-10)


def test_log_bernoulli_is_stable_for_extreme_logits_in_float32():
    """Reference: scipy.special.log_expit (log sigmoid) in float64; |logits| up to 200."""
    logits = np.array([[-200.0, -60.0, -20.0, 0.0, 20.0, 60.0, 200.0]] * 2)
    x = np.array([[0, 1, 0, 1, 0, 1, 1], [1, 0, 1, 0, 1, 0, 0]], dtype=np.float64)
    per_pixel = np.where(x == 1, log_expit(logits), log_expit(-logits))
    got = _np(log_bernoulli(tf.constant(x, tf.float32), tf.constant(logits, tf.float32)))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, per_pixel.sum(-1), rtol=1e-6)


def test_kl_normal_standard_matches_numerical_integration():
    """Reference: per dimension, scipy.integrate.quad of q(z) (log q(z) - log N(z; 0, 1)), summed."""
    mean = np.array([0.0, 1.5, -2.0, 0.3])
    logvar = np.array([0.0, -3.0, 1.5, -6.0])
    expected = 0.0
    for m, lv in zip(mean, logvar):
        q = stats.norm(m, np.exp(0.5 * lv))
        lo, hi = q.ppf(1e-12), q.isf(1e-12)
        value, _ = integrate.quad(lambda z: q.pdf(z) * (q.logpdf(z) - stats.norm.logpdf(z)), lo, hi,
                                  epsabs=1e-12, epsrel=1e-10, limit=200)
        expected += value
    got = float(_np(kl_normal_standard(tf.constant(mean), tf.constant(logvar))))
    assert got == pytest.approx(expected, rel=1e-7, abs=1e-9)


def test_kl_normal_standard_matches_monte_carlo():
    """Reference: mean of log q(z) - log p(z) over 400,000 draws z ~ q (scipy logpdfs), within 5 SE."""
    rng = np.random.default_rng(4)
    mean = rng.normal(size=(3, 10))
    logvar = rng.uniform(-3, 1, size=(3, 10))
    std = np.exp(0.5 * logvar)
    z = mean + std * rng.normal(size=(400_000, 3, 10))
    log_ratio = (stats.norm.logpdf(z, mean, std) - stats.norm.logpdf(z)).sum(-1)  # (n, 3)
    mc, se = log_ratio.mean(0), log_ratio.std(0) / np.sqrt(len(log_ratio))
    got = _np(kl_normal_standard(tf.constant(mean), tf.constant(logvar)))
    assert np.all(np.abs(got - mc) < 5 * se), (got, mc, se)


def _mixture_reference(z, means, logvars):
    """log (1/K) sum_k prod_d N(z_d; m_kd, exp(lv_kd)) with scipy.stats.norm, float64."""
    comp = stats.norm.logpdf(z[..., None, :], means, np.exp(0.5 * logvars)).sum(-1)  # (..., K)
    return logsumexp(comp, axis=-1) - np.log(len(means))


def test_log_mixture_normal_diag_matches_scipy_float64():
    """Reference: scipy.special.logsumexp over components of summed norm.logpdf, in float64;
    also a leading (S, B) batch shape."""
    rng = np.random.default_rng(5)
    K, D = 30, 8
    means = rng.normal(scale=2, size=(K, D))
    logvars = rng.uniform(-6, 2, size=(K, D))
    z = rng.normal(scale=2, size=(4, 5, D))
    got = _np(log_mixture_normal_diag(tf.constant(z), tf.constant(means), tf.constant(logvars)))
    assert got.shape == (4, 5)
    np.testing.assert_allclose(got, _mixture_reference(z, means, logvars), rtol=1e-9, atol=1e-9)


def test_log_mixture_normal_diag_single_component_is_normal():
    """K = 1: the mixture is one diagonal Gaussian (scipy.stats.norm)."""
    rng = np.random.default_rng(6)
    means, logvars = rng.normal(size=(1, 5)), rng.uniform(-2, 1, size=(1, 5))
    z = rng.normal(size=(11, 5))
    expected = stats.norm.logpdf(z, means, np.exp(0.5 * logvars)).sum(-1)
    got = _np(log_mixture_normal_diag(tf.constant(z), tf.constant(means), tf.constant(logvars)))
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.parametrize("offset", [0.0, 1.0, 5.0, 10.0])
def test_log_mixture_normal_diag_float32_accuracy_far_from_the_origin(offset):
    """float32, D=40, K=500, logvars down to -6, z drawn from the components as in importance
    sampling, the components' cloud (unit spread) centred at ``offset`` in every dimension: within
    0.005 nats of the float64 scipy reference. Without centring, the matmul expansion loses about
    0.03 nats at offset 5 and 0.1 at offset 10 to cancellation of |m|^2 / v terms."""
    rng = np.random.default_rng(7)
    K, D, B = 500, 40, 300
    means = offset + rng.normal(size=(K, D))
    logvars = rng.uniform(-6, 0, size=(K, D))
    pick = rng.integers(0, K, size=B)
    z = means[pick] + np.exp(0.5 * logvars[pick]) * rng.normal(size=(B, D))
    z32, m32, l32 = (tf.constant(a, tf.float32) for a in (z, means, logvars))
    reference = _mixture_reference(*(a.numpy().astype(np.float64) for a in (z32, m32, l32)))
    got = _np(log_mixture_normal_diag(z32, m32, l32))
    assert got.dtype == np.float32 and got.shape == (B,)
    np.testing.assert_allclose(got, reference, atol=5e-3, rtol=0)


def test_log_mixture_normal_diag_gradients_match_float64():
    """Centring by the components' mean is exact (stop_gradient on the centre changes no gradient):
    gradients with respect to z, means and logvars match the float64 broadcast's."""
    rng = np.random.default_rng(8)
    z, means, logvars = rng.normal(size=(6, 5)), 2 + rng.normal(size=(7, 5)), rng.uniform(-3, 1, (7, 5))

    def broadcast(z, m, lv):
        comp = -0.5 * tf.reduce_sum(np.log(2 * np.pi) + lv[None] + tf.square(z[:, None] - m[None]) * tf.exp(-lv[None]), -1)
        return tf.reduce_logsumexp(comp, -1) - np.log(7.0)

    grads = []
    for fn in (log_mixture_normal_diag, broadcast):
        args = [tf.Variable(a) for a in (z, means, logvars)]
        with tf.GradientTape() as tape:
            value = tf.reduce_sum(fn(*args) * np.arange(1, 7))
        grads.append([g.numpy() for g in tape.gradient(value, args)])
    for got, want in zip(*grads):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# Discretized logistic over 256 grey levels.
BINS = np.arange(256) / 255.0


def _log_probs_all_bins(mean, log_scale):
    """log P(x = k/255) for k = 0..255 under one (mean, log_scale), from the library (float32)."""
    x = tf.constant(BINS.reshape(256, 1), tf.float32)
    m = tf.fill([256, 1], tf.constant(mean, tf.float32))
    s = tf.fill([256, 1], tf.constant(log_scale, tf.float32))
    return _np(log_discretized_logistic(x, m, s)).astype(np.float64)


@pytest.mark.parametrize("mean", [0.0, 0.5, 1.0, 0.3, 0.999, -0.5, 1.5])
@pytest.mark.parametrize("log_scale", [-10.0, -4.5, -2.0, 0.0, 3.0])
def test_discretized_logistic_sums_to_one(mean, log_scale):
    """The 256 bin probabilities (first and last bins open-ended) sum to 1, extremes included.

    Tolerance: float32 rounding of a bin edge (~eps/2 in x) moves a bin's mass by up to
    eps / (8 scale); at scale e^-10 with the mean on a bin edge that alone is ~3e-4."""
    log_p = _log_probs_all_bins(mean, log_scale)
    assert np.all(np.isfinite(log_p)) and np.all(log_p <= 1e-6)
    tol = 2e-5 + np.finfo(np.float32).eps * np.exp(-log_scale) / 4
    assert np.exp(log_p).sum() == pytest.approx(1.0, abs=tol)


def _reference_log_bin(k, mean, log_scale):
    """log P(bin k) from scipy.stats.logistic in float64, computed in the tail where it is small."""
    dist = stats.logistic(loc=mean, scale=np.exp(log_scale))
    lo, hi = (k - 0.5) / 255, (k + 0.5) / 255
    if k == 0:
        return dist.logcdf(hi)
    if k == 255:
        return dist.logsf(lo)
    if hi <= mean:  # left tail: cdf(hi) - cdf(lo)
        a, b = dist.logcdf(hi), dist.logcdf(lo)
    else:  # right tail: sf(lo) - sf(hi)
        a, b = dist.logsf(lo), dist.logsf(hi)
    return a + np.log1p(-np.exp(b - a))


@pytest.mark.parametrize("mean,log_scale", [(0.5, -2.0), (0.2, -4.5), (0.8, 0.0), (0.0, -4.5),
                                            (1.0, -4.5), (0.5, 1.0)])
@pytest.mark.parametrize("k", [0, 1, 100, 128, 200, 254, 255])
def test_discretized_logistic_bins_match_scipy_logistic(mean, log_scale, k):
    """One bin's log probability against differences of scipy.stats.logistic.cdf (and its tails),
    including bins ~100 nats out in the tail."""
    got = _log_probs_all_bins(mean, log_scale)[k]
    expected = _reference_log_bin(k, mean, log_scale)
    assert np.isfinite(got)
    assert got == pytest.approx(expected, rel=1e-4, abs=2e-4)


def test_discretized_logistic_middle_bin_plain_cdf_difference():
    """A middle bin near the mean: exactly logistic.cdf(x + 1/510) - logistic.cdf(x - 1/510)."""
    mean, log_scale, k = 0.47, -3.0, 120
    dist = stats.logistic(loc=mean, scale=np.exp(log_scale))
    p = dist.cdf((k + 0.5) / 255) - dist.cdf((k - 0.5) / 255)
    assert np.exp(_log_probs_all_bins(mean, log_scale)[k]) == pytest.approx(p, rel=1e-5)


def test_discretized_logistic_sums_over_pixels():
    """Several pixels: the per-row value is the sum of per-pixel scipy references."""
    rng = np.random.default_rng(8)
    k = rng.integers(0, 256, size=(3, 6))
    mean = rng.uniform(0, 1, size=(3, 6))
    log_scale = rng.uniform(-4.5, 0, size=(3, 6))
    expected = np.vectorize(_reference_log_bin)(k, mean, log_scale).sum(-1)
    got = _np(log_discretized_logistic(tf.constant(k / 255.0, tf.float32),
                                       tf.constant(mean, tf.float32),
                                       tf.constant(log_scale, tf.float32)))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
