"""ELBO, IWAE and importance-sampled log p(x) on a linear-Gaussian model whose marginal is known:

    z ~ N(0, I_d),  x | z ~ N(W z + b, s^2 I_D)   =>   x ~ N(b, W W^T + s^2 I_D)   (scipy reference)

The encoder is a deliberately imperfect diagonal Gaussian (the exact posterior's mean shifted and
its variances inflated), so importance weights vary and the ELBO has a known, non-zero gap
KL(q(z|x) || p(z|x)), computed here in closed form.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from vae_lib.densities import log_normal_diag
from vae_lib.errors import ConfigError
from vae_lib.estimators import (ImportanceSampler, bits_per_dim, elbo, elbo_terms, iwae_bound,
                                log_likelihood)
from vae_lib.priors import StandardNormal


class LinearGaussianModel:
    """A real (non-mock) model for the estimators: encoder(x), log_px_given_z(x, z) and prior."""

    def __init__(self, W, b, s, mean_shift=0.0, var_inflation=1.0, diagonal_posterior=False):
        self.W, self.b, self.s = np.asarray(W, np.float64), np.asarray(b, np.float64), float(s)
        D, d = self.W.shape
        self.prior = StandardNormal(d)
        precision = np.eye(d) + self.W.T @ self.W / self.s**2
        self.post_cov = np.linalg.inv(precision)  # exact posterior covariance (x-independent)
        self.post_gain = self.post_cov @ self.W.T / self.s**2  # posterior mean = gain @ (x - b)
        if diagonal_posterior:
            assert np.allclose(self.post_cov, np.diag(np.diag(self.post_cov)))
        self.q_shift = mean_shift * np.sqrt(np.diag(self.post_cov))
        self.q_var = var_inflation * np.diag(self.post_cov)
        self._W = tf.constant(self.W, tf.float32)
        self._b = tf.constant(self.b, tf.float32)
        self._gain = tf.constant(self.post_gain, tf.float32)
        self._shift = tf.constant(self.q_shift, tf.float32)
        self._q_logvar = tf.constant(np.log(self.q_var), tf.float32)

    # -- what the estimators use -----------------------------------------------------------
    def encoder(self, x):
        x = tf.convert_to_tensor(x, tf.float32)
        mean = tf.matmul(x - self._b, self._gain, transpose_b=True) + self._shift
        return mean, tf.zeros_like(mean) + self._q_logvar

    def log_px_given_z(self, x, z):
        mean = tf.einsum("...j,ij->...i", z, self._W) + self._b  # (S, B, D) or (B, D)
        return log_normal_diag(x, mean, tf.fill(tf.shape(mean), 2 * math.log(self.s)))

    # -- closed forms (float64) -------------------------------------------------------------
    def true_log_px(self, x):
        cov = self.W @ self.W.T + self.s**2 * np.eye(len(self.b))
        return stats.multivariate_normal(self.b, cov).logpdf(x)

    def q_params(self, x):
        return (x - self.b) @ self.post_gain.T + self.q_shift, self.q_var

    def expected_elbo(self, x):
        """E_q[ELBO] = log p(x) - KL(q(z|x) || p(z|x)), Gaussian KL with the full posterior."""
        q_mean, q_var = self.q_params(x)
        post_mean = (x - self.b) @ self.post_gain.T
        prec = np.linalg.inv(self.post_cov)
        d = len(q_var)
        diff = post_mean - q_mean
        kl = 0.5 * (np.trace(prec @ np.diag(q_var)) + np.einsum("bi,ij,bj->b", diff, prec, diff)
                    - d + np.linalg.slogdet(self.post_cov)[1] - np.log(q_var).sum())
        return self.true_log_px(x) - kl

    def expected_distortion(self, x):
        """E_q[-log p(x|z)] = D/2 log(2 pi s^2) + (|x - W m - b|^2 + tr(W diag(v) W^T)) / (2 s^2)."""
        q_mean, q_var = self.q_params(x)
        resid = x - q_mean @ self.W.T - self.b
        D = len(self.b)
        return (0.5 * D * np.log(2 * np.pi * self.s**2)
                + ((resid**2).sum(-1) + np.trace(self.W @ np.diag(q_var) @ self.W.T)) / (2 * self.s**2))

    def kl_to_prior(self, x):
        """KL(q(z|x) || N(0, I)) in closed form."""
        q_mean, q_var = self.q_params(x)
        return 0.5 * (q_var + q_mean**2 - 1 - np.log(q_var)).sum(-1)

    def weight_cv(self, x, n=200_000, seed=0):
        """Coefficient of variation of the importance weights p(x, z) / q(z|x), by numpy MC."""
        rng = np.random.default_rng(seed)
        q_mean, q_var = self.q_params(x)
        out = []
        for xi, mi in zip(np.atleast_2d(x), np.atleast_2d(q_mean)):
            z = mi + np.sqrt(q_var) * rng.normal(size=(n, len(q_var)))
            log_w = (stats.norm.logpdf(xi, z @ self.W.T + self.b, self.s).sum(-1)
                     + stats.norm.logpdf(z).sum(-1) - stats.norm.logpdf(z, mi, np.sqrt(q_var)).sum(-1))
            w = np.exp(log_w - log_w.max())
            out.append(w.std() / w.mean())
        return np.array(out)


def _random_model(seed=0, **q):
    rng = np.random.default_rng(seed)
    D, d = 5, 3
    return LinearGaussianModel(rng.normal(size=(D, d)), rng.normal(size=D), 0.7, **q)


def _sample_x(model, n, seed=1):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, model.W.shape[1]))
    return (z @ model.W.T + model.b + model.s * rng.normal(size=(n, len(model.b)))).astype(np.float32)


@pytest.fixture(scope="module")
def approx_model():
    return _random_model(mean_shift=0.5, var_inflation=2.0)


@pytest.fixture(scope="module")
def images(approx_model):
    return _sample_x(approx_model, 8)


def test_setup_is_not_trivial(approx_model, images):
    """The proposal is imperfect: weights vary and the ELBO gap is well above float32 noise."""
    x = images.astype(np.float64)
    assert np.all(approx_model.weight_cv(x, n=50_000) > 0.3)
    assert np.all(approx_model.true_log_px(x) - approx_model.expected_elbo(x) > 0.2)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_importance_sampled_log_px_matches_closed_form(approx_model, images, jit_compile):
    """IS estimate with S=5000 vs scipy.stats.multivariate_normal(b, W W^T + s^2 I).logpdf,
    within 5 Monte-Carlo standard errors, cv(w)/sqrt(S), plus the O(cv^2/S) bias."""
    S = 5000
    x = images.astype(np.float64)
    truth = approx_model.true_log_px(x)
    cv = approx_model.weight_cv(x)
    got = log_likelihood(approx_model, images, num_samples=S, seed=3, jit_compile=jit_compile)
    assert got.shape == (len(images),) and np.all(np.isfinite(got))
    tol = 5 * cv / np.sqrt(S) + cv**2 / S + 1e-4
    assert np.all(np.abs(got - truth) < tol), (got - truth, tol)


def test_elbo_terms_match_closed_forms(approx_model, images):
    """Rate = KL(q(z|x) || N(0, I)) in closed form (standard prior: analytic); the mean distortion
    over 20000 draws equals E_q[-log p(x|z)] in closed form within 5 SE."""
    reps = 20_000
    x = images.astype(np.float64)
    tiled = tf.constant(np.repeat(images, reps, axis=0))
    distortion, rate = elbo_terms(approx_model, tiled, tf.constant([0, 1], tf.int64))
    rate = rate.numpy().reshape(len(images), reps)
    np.testing.assert_allclose(rate, np.repeat(approx_model.kl_to_prior(x)[:, None], reps, 1),
                               rtol=1e-5, atol=1e-5)
    distortion = distortion.numpy().reshape(len(images), reps)
    se = distortion.std(1) / np.sqrt(reps)
    assert np.all(np.abs(distortion.mean(1) - approx_model.expected_distortion(x)) < 5 * se + 1e-4)


def test_elbo_is_below_log_px_and_matches_its_expectation(approx_model, images):
    """Mean of 20000 single-sample ELBOs per image equals log p(x) - KL(q || posterior) (closed
    form) within 5 SE, and lies below both the true log p(x) and the IS estimate."""
    reps = 20_000
    x = images.astype(np.float64)
    draws = elbo(approx_model, np.repeat(images, reps, axis=0), seed=11,
                 batch_size=len(images) * reps).reshape(len(images), reps)
    mean, se = draws.mean(1), draws.std(1) / np.sqrt(reps)
    expected = approx_model.expected_elbo(x)
    truth = approx_model.true_log_px(x)
    assert np.all(np.abs(mean - expected) < 5 * se + 1e-4), (mean - expected, se)
    assert np.all(mean + 5 * se < truth)
    is_estimate = log_likelihood(approx_model, images, num_samples=5000, seed=5)
    assert np.all(mean + 5 * se < is_estimate)


def test_iwae_bound_increases_with_k(approx_model, images):
    """E[L_1] < E[L_10] < E[L_1000] <= log p(x); L_1 is the ELBO in expectation (closed form)."""
    x = images.astype(np.float64)
    bounds = {}
    for k, reps in [(1, 4000), (10, 400), (1000, 20)]:  # independent draws of L_k per image
        draws = iwae_bound(approx_model, np.repeat(images, reps, axis=0), k,
                           seed=k).reshape(len(images), reps)
        bounds[k] = (draws.mean(1), draws.std(1) / np.sqrt(draws.shape[1]))
    (l1, se1), (l10, se10), (l1000, se1000) = bounds[1], bounds[10], bounds[1000]
    assert np.all(l1 + 4 * np.hypot(se1, se10) < l10)
    assert np.all(l10 + 4 * np.hypot(se10, se1000) < l1000)
    assert np.all(np.abs(l1 - approx_model.expected_elbo(x)) < 5 * se1 + 1e-4)
    assert np.all(l1000 < approx_model.true_log_px(x) + 5 * se1000 + 1e-4)


def test_exact_posterior_gives_exact_log_px_for_any_chunking():
    """With orthogonal columns in W the posterior is diagonal; with q = posterior every importance
    weight equals p(x), so every S and every split into passes must return log p(x) exactly (up to
    float32 rounding), image by image. Catches mix-ups in the chunking and in the -log S."""
    rng = np.random.default_rng(9)
    D, d = 5, 3
    basis, _ = np.linalg.qr(rng.normal(size=(D, d)))
    W = basis * np.array([2.0, 1.0, 0.5])  # orthogonal columns of different lengths
    model = LinearGaussianModel(W, rng.normal(size=D), 0.6, diagonal_posterior=True)
    x = _sample_x(model, 7, seed=2)
    truth = model.true_log_px(x.astype(np.float64))
    assert np.ptp(truth) > 1.0  # distinct per image, so a permutation would be caught
    for num_samples, rows_per_pass in [(1, 8192), (37, 8192), (200, 64), (16, 64), (5, 12)]:
        sampler = ImportanceSampler(model, num_samples, rows_per_pass=rows_per_pass)
        got = sampler(x, seed=1)
        np.testing.assert_allclose(got, truth, atol=2e-4, err_msg=f"S={num_samples}, rows={rows_per_pass}")


def test_chunked_sampler_agrees_with_single_pass(approx_model, images):
    """Several passes per image (S=3000 in passes of 256) and several images per pass (S=50, 4
    images a pass, 8 images) agree with one pass, and with the closed form, within MC error."""
    x = images.astype(np.float64)
    truth, cv = approx_model.true_log_px(x), approx_model.weight_cv(x)
    for S, rows in [(3000, 256), (50, 200)]:
        chunked = ImportanceSampler(approx_model, S, rows_per_pass=rows)
        single = ImportanceSampler(approx_model, S, rows_per_pass=10**6)
        if S == 3000:
            assert chunked.samples_per_pass < S and chunked.images_per_pass == 1
        else:
            assert chunked.samples_per_pass == S and 1 < chunked.images_per_pass < len(images)
        assert single.samples_per_pass == S and single.images_per_pass >= len(images)
        a, b = chunked(images, seed=7), single(images, seed=7)
        se = cv / np.sqrt(S)
        assert np.all(np.abs(a - b) < 5 * np.sqrt(2) * se + 1e-4), (S, a - b, se)
        assert np.all(np.abs(a - truth) < 5 * se + cv**2 / S + 1e-4), (S, a - truth)


def test_estimates_are_reproducible_for_a_seed(approx_model, images):
    """Same seed -> identical estimates; another seed -> different draws."""
    a = log_likelihood(approx_model, images, num_samples=100, seed=1)
    b = log_likelihood(approx_model, images, num_samples=100, seed=1)
    c = log_likelihood(approx_model, images, num_samples=100, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("bad", [0, -5])
def test_nonpositive_sample_count_is_a_config_error(approx_model, bad):
    with pytest.raises(ConfigError, match="positive"):
        ImportanceSampler(approx_model, bad)


def test_bits_per_dim():
    """Reference values: a uniform distribution over 256 grey levels costs exactly 8 bits per pixel,
    a fair coin 1 bit; in general -ll * log2(e) / D."""
    D = 560
    assert bits_per_dim(-D * np.log(256.0), D) == pytest.approx(8.0, rel=1e-12)
    assert bits_per_dim(-784 * np.log(2.0), 784) == pytest.approx(1.0, rel=1e-12)
    ll = np.array([-1234.5, -800.25, 10.0])
    np.testing.assert_allclose(bits_per_dim(ll, D), -ll * np.log2(np.e) / D, rtol=1e-12)
