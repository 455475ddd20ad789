"""ELBO, IWAE and importance-sampled log p(x) of the library's own VAE and HVAE classes, built
from linear-Gaussian parts whose marginal is known in closed form:

    one level:  z ~ p(z),  x | z ~ N(W z + b, s^2 I_D)
                p(z) = N(0, I):            x ~ N(b, W W^T + s^2 I_D)
                p(z) = sum_k pi_k N(m_k, S_k):  x ~ sum_k pi_k N(W m_k + b, W S_k W^T + s^2 I_D)
    two levels: z2 ~ N(0, I), z1 | z2 ~ N(A z2 + a, s1^2 I), x | z1, z2 ~ N(B z1 + C z2 + b, s^2 I)
                (a Gaussian marginal, from the joint Gaussian of (z1, z2))

The encoders are deliberately imperfect diagonal Gaussians (the exact posterior's mean shifted and
its variances inflated), so importance weights vary and the ELBO has a real gap; references come
from scipy.stats in float64.

Written in ``keras.ops``, so that they run on every Keras backend the core supports: the JAX job
(tests/test_backends.py) runs them again under KERAS_BACKEND=jax.
"""
from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import pytest
from keras import ops
from scipy import stats
from scipy.special import logsumexp

from helpers import paper_model
from vae_lib import backend
from vae_lib.densities import log_normal_diag
from vae_lib.errors import ConfigError
from vae_lib.estimators import ImportanceSampler, bits_per_dim, elbo, iwae_bound, log_likelihood
from vae_lib.likelihoods import Likelihood
from vae_lib.models import HVAE, VAE
from vae_lib.priors import MixtureOfGaussians, StandardNormal

pytestmark = pytest.mark.portable


def _const(a):
    return ops.convert_to_tensor(np.asarray(a, np.float32))


class LinearEncoder(keras.layers.Layer):
    """x or [x, z2] -> (mean, logvar): mean = gain @ (x - offset) [+ gain2 @ z2] + shift, fixed
    logvar. A plain Keras layer, as a practitioner's would be: the HVAE gives it x repeated for
    each sample of z2."""

    def __init__(self, gain, offset, shift, var, gain2=None, const=None):
        super().__init__()
        self.gain = _const(gain)
        self.offset = _const(offset)
        self.shift = _const(shift if const is None else shift + const)
        self.logvar = _const(np.log(var))
        self.gain2 = None if gain2 is None else _const(gain2)

    def call(self, inputs):
        x, z2 = inputs if isinstance(inputs, (list, tuple)) else (inputs, None)
        mean = ops.einsum("...j,ij->...i", ops.cast(x, "float32") - self.offset, self.gain)
        if z2 is not None:
            mean = mean + ops.einsum("...j,ij->...i", z2, self.gain2)
        mean = mean + self.shift
        return mean, ops.zeros_like(mean) + self.logvar


class LinearGaussianDecoder(keras.layers.Layer):
    """z or [z1, z2] -> the mean W z [+ C z2] + b of p(x | z[, z2]) = N(mean, s^2 I)."""

    def __init__(self, W, b, C=None):
        super().__init__()
        self.W, self.b = _const(W), _const(b)
        self.C = None if C is None else _const(C)

    def call(self, inputs):
        z, z2 = inputs if isinstance(inputs, (list, tuple)) else (inputs, None)
        out = ops.einsum("...j,ij->...i", z, self.W) + self.b
        return out if z2 is None else out + ops.einsum("...j,ij->...i", z2, self.C)


class FixedVarianceGaussian(Likelihood):
    """x ~ N(decoder output, s^2 I): a likelihood of the test's own, through the library's interface."""

    def __init__(self, s):
        self.logvar = 2 * math.log(s)

    def params(self, output, event_shape):
        return ops.reshape(output, (ops.shape(output)[0], *event_shape))

    def log_prob(self, x, mean):
        return log_normal_diag(x, mean, ops.full_like(mean, self.logvar))

    def mean(self, params):
        return params


class LinearGaussianModel:
    """One latent layer: the library's VAE on linear-Gaussian parts, and closed forms (float64).

    ``mixture``: None for p(z) = N(0, I), else (weights, means, variances) of a diagonal Gaussian
    mixture prior, held by the library's MixtureOfGaussians (uniform weights)."""

    def __init__(self, W, b, s, mean_shift=0.0, var_inflation=1.0, mixture=None):
        self.W, self.b, self.s = np.asarray(W, np.float64), np.asarray(b, np.float64), float(s)
        D, d = self.W.shape
        self.mixture = mixture
        # q(z|x): a Gaussian fit to the posterior under N(0, I) (the exact posterior for the
        # standard prior), shifted and widened.
        precision = np.eye(d) + self.W.T @ self.W / self.s**2
        self.post_cov = np.linalg.inv(precision)
        self.post_gain = self.post_cov @ self.W.T / self.s**2  # posterior mean = gain @ (x - b)
        self.q_shift = mean_shift * np.sqrt(np.diag(self.post_cov))
        self.q_var = var_inflation * np.diag(self.post_cov)
        prior = StandardNormal() if mixture is None else MixtureOfGaussians(len(mixture[1]))
        self.vae = VAE(LinearEncoder(self.post_gain, self.b, self.q_shift, self.q_var),
                       LinearGaussianDecoder(self.W, self.b), prior, FixedVarianceGaussian(self.s))
        self.vae.build((None, D))
        if mixture is not None:
            _, means, variances = mixture
            prior.means.assign(np.asarray(means, np.float32))
            prior.logvars.assign(np.log(variances).astype(np.float32))

    def true_log_px(self, x):
        noise = self.s**2 * np.eye(len(self.b))
        if self.mixture is None:
            return stats.multivariate_normal(self.b, self.W @ self.W.T + noise).logpdf(x)
        weights, means, variances = self.mixture
        comps = [np.log(w) + stats.multivariate_normal(self.W @ m + self.b,
                                                       self.W @ np.diag(v) @ self.W.T + noise).logpdf(x)
                 for w, m, v in zip(weights, means, variances)]
        return logsumexp(np.stack(comps, -1), axis=-1)

    def q_params(self, x):
        return (x - self.b) @ self.post_gain.T + self.q_shift, self.q_var

    def log_prior(self, z):
        if self.mixture is None:
            return stats.norm.logpdf(z).sum(-1)
        weights, means, variances = self.mixture
        comps = [np.log(w) + stats.norm.logpdf(z, m, np.sqrt(v)).sum(-1)
                 for w, m, v in zip(weights, means, variances)]
        return logsumexp(np.stack(comps, -1), axis=-1)

    def log_weights_numpy(self, x, n, seed=0):
        """(N, n) log p(x, z) - log q(z|x) for z ~ q, by numpy and scipy (the independent path)."""
        rng = np.random.default_rng(seed)
        q_mean, q_var = self.q_params(np.atleast_2d(x))
        z = q_mean[:, None] + np.sqrt(q_var) * rng.normal(size=(len(q_mean), n, len(q_var)))
        log_lik = stats.norm.logpdf(np.atleast_2d(x)[:, None], z @ self.W.T + self.b, self.s).sum(-1)
        return log_lik + self.log_prior(z) - stats.norm.logpdf(z, q_mean[:, None], np.sqrt(q_var)).sum(-1)

    def weight_cv(self, x, n=200_000, seed=0):
        """Coefficient of variation of the importance weights p(x, z) / q(z|x), by numpy MC."""
        log_w = self.log_weights_numpy(x, n, seed)
        w = np.exp(log_w - log_w.max(-1, keepdims=True))
        return w.std(-1) / w.mean(-1)

    def expected_elbo(self, x, n=400_000):
        """E_q[log p(x, z) - log q(z|x)]: in closed form under N(0, I) (log p(x) - KL(q || posterior)),
        else by numpy MC with its standard error."""
        if self.mixture is not None:
            log_w = self.log_weights_numpy(x, n, seed=123)
            return log_w.mean(-1), log_w.std(-1) / np.sqrt(n)
        q_mean, q_var = self.q_params(x)
        post_mean = (x - self.b) @ self.post_gain.T
        prec = np.linalg.inv(self.post_cov)
        diff = post_mean - q_mean
        kl = 0.5 * (np.trace(prec @ np.diag(q_var)) + np.einsum("bi,ij,bj->b", diff, prec, diff)
                    - len(q_var) + np.linalg.slogdet(self.post_cov)[1] - np.log(q_var).sum())
        return self.true_log_px(x) - kl, np.zeros(len(x))

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
    assert np.all(approx_model.true_log_px(x) - approx_model.expected_elbo(x)[0] > 0.2)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_importance_sampled_log_px_matches_closed_form(approx_model, images, jit_compile):
    """IS estimate with S=5000 vs scipy.stats.multivariate_normal(b, W W^T + s^2 I).logpdf,
    within 5 Monte-Carlo standard errors, cv(w)/sqrt(S), plus the O(cv^2/S) bias."""
    S = 5000
    x = images.astype(np.float64)
    truth = approx_model.true_log_px(x)
    cv = approx_model.weight_cv(x)
    got = log_likelihood(approx_model.vae, images, num_samples=S, seed=3, jit_compile=jit_compile)
    assert got.shape == (len(images),) and np.all(np.isfinite(got))
    tol = 5 * cv / np.sqrt(S) + cv**2 / S + 1e-4
    assert np.all(np.abs(got - truth) < tol), (got - truth, tol)


def test_elbo_terms_match_closed_forms(approx_model, images):
    """Rate = KL(q(z|x) || N(0, I)) in closed form (standard prior, closed_form_kl); the mean distortion
    over 20000 draws equals E_q[-log p(x|z)] in closed form within 5 SE."""
    reps = 20_000
    x = images.astype(np.float64)
    tiled = ops.convert_to_tensor(np.repeat(images, reps, axis=0))
    distortion, rate = approx_model.vae.elbo_terms(tiled, backend.seed_pair(0, 1))
    rate = ops.convert_to_numpy(rate).reshape(len(images), reps)
    np.testing.assert_allclose(rate, np.repeat(approx_model.kl_to_prior(x)[:, None], reps, 1),
                               rtol=1e-5, atol=1e-5)
    distortion = ops.convert_to_numpy(distortion).reshape(len(images), reps)
    se = distortion.std(1) / np.sqrt(reps)
    assert np.all(np.abs(distortion.mean(1) - approx_model.expected_distortion(x)) < 5 * se + 1e-4)


def test_elbo_is_below_log_px_and_matches_its_expectation(approx_model, images):
    """Mean of 20000 single-sample ELBOs per image equals log p(x) - KL(q || posterior) (closed
    form) within 5 SE, and lies below both the true log p(x) and the IS estimate."""
    reps = 20_000
    x = images.astype(np.float64)
    draws = elbo(approx_model.vae, np.repeat(images, reps, axis=0), seed=11,
                 batch_size=len(images) * reps).reshape(len(images), reps)
    mean, se = draws.mean(1), draws.std(1) / np.sqrt(reps)
    expected, _ = approx_model.expected_elbo(x)
    truth = approx_model.true_log_px(x)
    assert np.all(np.abs(mean - expected) < 5 * se + 1e-4), (mean - expected, se)
    assert np.all(mean + 5 * se < truth)
    is_estimate = log_likelihood(approx_model.vae, images, num_samples=5000, seed=5)
    assert np.all(mean + 5 * se < is_estimate)


def test_iwae_bound_increases_with_k(approx_model, images):
    """E[L_1] < E[L_10] < E[L_1000] <= log p(x); L_1 is the ELBO in expectation (closed form)."""
    x = images.astype(np.float64)
    bounds = {}
    for k, reps in [(1, 4000), (10, 400), (1000, 20)]:  # independent draws of L_k per image
        draws = iwae_bound(approx_model.vae, np.repeat(images, reps, axis=0), k,
                           seed=k).reshape(len(images), reps)
        bounds[k] = (draws.mean(1), draws.std(1) / np.sqrt(draws.shape[1]))
    (l1, se1), (l10, se10), (l1000, se1000) = bounds[1], bounds[10], bounds[1000]
    assert np.all(l1 + 4 * np.hypot(se1, se10) < l10)
    assert np.all(l10 + 4 * np.hypot(se10, se1000) < l1000)
    assert np.all(np.abs(l1 - approx_model.expected_elbo(x)[0]) < 5 * se1 + 1e-4)
    assert np.all(l1000 < approx_model.true_log_px(x) + 5 * se1000 + 1e-4)


def test_exact_posterior_gives_exact_log_px_for_any_chunking():
    """With orthogonal columns in W the posterior is diagonal; with q = posterior every importance
    weight equals p(x), so every S and every split into passes must return log p(x) exactly (up to
    float32 rounding), image by image. Catches mix-ups in the chunking and in the -log S."""
    rng = np.random.default_rng(9)
    D, d = 5, 3
    basis, _ = np.linalg.qr(rng.normal(size=(D, d)))
    W = basis * np.array([2.0, 1.0, 0.5])  # orthogonal columns of different lengths
    model = LinearGaussianModel(W, rng.normal(size=D), 0.6)
    assert np.allclose(model.post_cov, np.diag(np.diag(model.post_cov)))
    x = _sample_x(model, 7, seed=2)
    truth = model.true_log_px(x.astype(np.float64))
    assert np.ptp(truth) > 1.0  # distinct per image, so a permutation would be caught
    for num_samples, rows_per_pass in [(1, 8192), (37, 8192), (200, 64), (16, 64), (5, 12)]:
        sampler = ImportanceSampler(model.vae, num_samples, rows_per_pass=rows_per_pass)
        got = sampler(x, seed=1)
        np.testing.assert_allclose(got, truth, atol=2e-4, err_msg=f"S={num_samples}, rows={rows_per_pass}")


def test_chunked_sampler_agrees_with_single_pass(approx_model, images):
    """Promise: the result does not depend on how the work is split (S=5000 does not fit in one
    pass). Several passes per image (S=3000 in passes of 256) and several images per pass (S=50, 4
    images a pass, 8 images) agree with one pass, and with the closed form, within MC error; the
    pass sizes are asserted so that both splits are really exercised."""
    x = images.astype(np.float64)
    truth, cv = approx_model.true_log_px(x), approx_model.weight_cv(x)
    for S, rows in [(3000, 256), (50, 200)]:
        chunked = ImportanceSampler(approx_model.vae, S, rows_per_pass=rows)
        single = ImportanceSampler(approx_model.vae, S, rows_per_pass=10**6)
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
    a = log_likelihood(approx_model.vae, images, num_samples=100, seed=1)
    b = log_likelihood(approx_model.vae, images, num_samples=100, seed=1)
    c = log_likelihood(approx_model.vae, images, num_samples=100, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_an_evaluation_that_goes_on_from_a_pass_gives_the_numbers_of_one_that_did_not_stop(approx_model, images):
    """Promise of ``passes``: from the first image of any pass, the rest of the evaluation is exactly
    (bitwise) what the whole one gives for those images; a start inside a pass, or beyond the
    images, is refused with the starts that are allowed."""
    sampler = ImportanceSampler(approx_model.vae, 50, rows_per_pass=150)  # 3 images a pass
    assert sampler.images_per_pass == 3 and len(images) > 6
    whole = sampler.evaluate(images, seed=5)
    rest = list(sampler.passes(images, seed=5, start=6))
    assert [first for first, _, _ in rest] == list(range(6, len(images), 3))
    np.testing.assert_array_equal(np.concatenate([log_px for _, log_px, _ in rest]), whole.log_px[6:])
    np.testing.assert_array_equal(np.concatenate([ess for _, _, ess in rest]), whole.ess[6:])
    for bad in (4, len(images) + 3):
        with pytest.raises(ConfigError, match="first image of a pass"):
            next(sampler.passes(images, seed=5, start=bad))


@pytest.mark.parametrize("bad", [0, -5])
def test_nonpositive_sample_count_is_a_config_error(approx_model, bad):
    with pytest.raises(ConfigError, match="positive"):
        ImportanceSampler(approx_model.vae, bad)


@pytest.mark.parametrize("model_name", ["vae", "hvae"])
def test_bfloat16_matmuls_are_refused_for_the_8_bit_likelihood(model_name):
    """On Frey Faces' discretized logistic, bfloat16 matmul inputs moved a trained paper model's test
    log-likelihood by -0.19 nats (benchmarks/README.md): the sampler refuses them there, by the model's
    likelihood, and so does a run's configuration, by the dataset's; binary images keep them."""
    from vae_lib.pipeline.config import RunConfig

    grey = paper_model(model_name, "standard", 12, "discretized_logistic", hidden_units=8)
    with pytest.raises(ConfigError, match="binary images only.*discretized_logistic"):
        ImportanceSampler(grey, 10, matmul_inputs="bfloat16")
    ImportanceSampler(grey, 10)  # float32 is fine
    binary = paper_model(model_name, "standard", 12, "bernoulli", hidden_units=8)
    assert ImportanceSampler(binary, 10, matmul_inputs="bfloat16").matmul_inputs == "bfloat16"
    with pytest.raises(ConfigError, match="binary images only"):
        RunConfig(dataset="frey_faces", model=model_name, eval_matmuls="bfloat16")
    RunConfig(dataset="caltech101_silhouettes", model=model_name, eval_matmuls="bfloat16")


def test_bits_per_dim():
    """Reference values: a uniform distribution over 256 grey levels costs exactly 8 bits per pixel,
    a fair coin 1 bit; in general -ll * log2(e) / D."""
    D = 560
    assert bits_per_dim(-D * np.log(256.0), D) == pytest.approx(8.0, rel=1e-12)
    assert bits_per_dim(-784 * np.log(2.0), 784) == pytest.approx(1.0, rel=1e-12)
    ll = np.array([-1234.5, -800.25, 10.0])
    np.testing.assert_allclose(bits_per_dim(ll, D), -ll * np.log2(np.e) / D, rtol=1e-12)


# -- a Gaussian-mixture prior: the Monte Carlo KL path and the mixture density inside the model ----
@pytest.fixture(scope="module")
def mixture_model():
    """p(z) a uniform mixture of 3 diagonal Gaussians in 2-D (the library's MixtureOfGaussians)."""
    rng = np.random.default_rng(21)
    D, d = 5, 2
    means = np.array([[-1.5, 0.5], [1.0, 1.0], [0.5, -1.5]])
    variances = np.array([[0.3, 0.5], [0.4, 0.2], [0.6, 0.3]])
    return LinearGaussianModel(rng.normal(size=(D, d)), rng.normal(size=D), 0.5, mean_shift=0.3,
                               var_inflation=1.5, mixture=(np.full(3, 1 / 3), means, variances))


def test_mixture_prior_importance_sampling_matches_closed_form_marginal(mixture_model):
    """log p(x) of a linear-Gaussian model with a Gaussian-mixture prior is a Gaussian mixture
    (scipy); the importance-sampled estimate (S=5000) matches it within 5 Monte Carlo standard
    errors, the estimator's own (ESS-based) error agreeing with the weights' spread measured by numpy."""
    x = _sample_x(mixture_model, 6, seed=4)
    truth = mixture_model.true_log_px(x.astype(np.float64))
    S = 5000
    result = ImportanceSampler(mixture_model.vae, S).evaluate(x, seed=2)
    cv = mixture_model.weight_cv(x.astype(np.float64))
    assert np.all(cv > 0.3), cv  # the proposal is imperfect
    np.testing.assert_allclose(result.mc_stderr, cv / np.sqrt(S), rtol=0.25)
    assert np.all(np.abs(result.log_px - truth) < 5 * cv / np.sqrt(S) + cv**2 / S + 1e-4)


def test_mixture_prior_elbo_and_monte_carlo_rate_match_numpy(mixture_model):
    """With a mixture prior the rate is the single-sample Monte Carlo KL, log q(z|x) - log p(z): the
    mean of 20000 ELBO draws matches E_q[log p(x, z) - log q(z|x)] computed by numpy/scipy (400k
    draws), and lies below the true log p(x)."""
    x = _sample_x(mixture_model, 4, seed=5)
    reps = 20_000
    draws = elbo(mixture_model.vae, np.repeat(x, reps, axis=0), seed=3,
                 batch_size=len(x) * reps).reshape(len(x), reps)
    mean, se = draws.mean(1), draws.std(1) / np.sqrt(reps)
    expected, expected_se = mixture_model.expected_elbo(x.astype(np.float64))
    assert np.all(np.abs(mean - expected) < 5 * np.hypot(se, expected_se) + 1e-4), (mean - expected, se)
    assert np.all(mean + 5 * se < mixture_model.true_log_px(x.astype(np.float64)))


# -- two latent layers: the library's HVAE on linear-Gaussian parts -----------------------------
class TwoLevelLinearGaussian:
    """z2 ~ N(0, I_2), z1 | z2 ~ N(A z2 + a, s1^2 I_2), x | z1, z2 ~ N(B z1 + C z2 + b, s^2 I_5).

    q(z2|x) is the exact posterior marginal of z2, q(z1|x, z2) the exact conditional of z1, both
    with their means shifted and their variances inflated and made diagonal."""

    def __init__(self, seed=0, shift=0.4, inflation=1.6):
        rng = np.random.default_rng(seed)
        D, d1, d2 = 5, 2, 2
        self.A, self.a, self.s1 = rng.normal(size=(d1, d2)), rng.normal(size=d1), 0.7
        self.B, self.C, self.b, self.s = (rng.normal(size=(D, d1)), rng.normal(size=(D, d2)),
                                          rng.normal(size=D), 0.5)
        self.mu_z = np.concatenate([self.a, np.zeros(d2)])
        self.cov_z = np.block([[self.A @ self.A.T + self.s1**2 * np.eye(d1), self.A],
                               [self.A.T, np.eye(d2)]])
        self.M = np.hstack([self.B, self.C])
        post_cov = np.linalg.inv(np.linalg.inv(self.cov_z) + self.M.T @ self.M / self.s**2)
        gain = post_cov @ self.M.T / self.s**2  # posterior mean = gain @ (x - b) + const
        const = post_cov @ np.linalg.inv(self.cov_z) @ self.mu_z
        i1, i2 = slice(0, d1), slice(d1, d1 + d2)
        cond = post_cov[i1, i2] @ np.linalg.inv(post_cov[i2, i2])  # E[z1 | x, z2] slope in z2
        cond_cov = post_cov[i1, i1] - cond @ post_cov[i2, i1]
        q_z2 = LinearEncoder(gain[i2], self.b, shift * np.sqrt(np.diag(post_cov[i2, i2])),
                             inflation * np.diag(post_cov[i2, i2]), const=const[i2])
        q_z1 = LinearEncoder(gain[i1] - cond @ gain[i2], self.b,
                             shift * np.sqrt(np.diag(cond_cov)), inflation * np.diag(cond_cov),
                             gain2=cond, const=const[i1] - cond @ const[i2])
        p_z1 = LinearEncoder(self.A, np.zeros(d2), self.a, np.full(d1, self.s1**2))
        p_x = LinearGaussianDecoder(self.B, self.b, C=self.C)
        self.hvae = HVAE(q_z2, q_z1, p_z1, p_x, StandardNormal(), FixedVarianceGaussian(self.s))
        self.hvae.build((None, D))

    def true_log_px(self, x):
        cov = self.M @ self.cov_z @ self.M.T + self.s**2 * np.eye(len(self.b))
        return stats.multivariate_normal(self.M @ self.mu_z + self.b, cov).logpdf(x)

    def sample_x(self, n, seed=1):
        rng = np.random.default_rng(seed)
        z = rng.multivariate_normal(self.mu_z, self.cov_z, size=n)
        return (z @ self.M.T + self.b + self.s * rng.normal(size=(n, len(self.b)))).astype(np.float32)


def test_hvae_importance_sampling_matches_closed_form_marginal():
    """The HVAE's log-weights over S=5000 draws of (z2, z1) ~ q give log p(x) of the two-level
    linear-Gaussian model (scipy) within 5 of the estimator's Monte Carlo standard errors."""
    model = TwoLevelLinearGaussian()
    x = model.sample_x(6)
    truth = model.true_log_px(x.astype(np.float64))
    result = ImportanceSampler(model.hvae, 5000).evaluate(x, seed=4)
    # the tolerance below comes from the sampler's own ESS: bound it from both sides, so that an ESS
    # computed too small cannot widen the tolerance (it is about 2100 of 5000 here)
    assert np.all((result.ess > 0.2 * 5000) & (result.ess < 0.9 * 5000)), result.ess
    assert np.all(np.abs(result.log_px - truth) < 5 * result.mc_stderr + 2e-3), (result.log_px - truth, result.mc_stderr)


def test_hvae_elbo_is_below_log_px_and_iwae_bound_rises_with_s():
    """E[ELBO] (mean of 4000 draws) < E[L_10] < E[L_500] < log p(x) + noise, for the HVAE."""
    model = TwoLevelLinearGaussian(seed=3, shift=0.8, inflation=2.5)
    x = model.sample_x(4, seed=2)
    truth = model.true_log_px(x.astype(np.float64))
    draws = elbo(model.hvae, np.repeat(x, 4000, axis=0), seed=1, batch_size=16000).reshape(4, -1)
    l1, se1 = draws.mean(1), draws.std(1) / np.sqrt(draws.shape[1])
    bounds = {}
    for k, reps in [(10, 3000), (500, 60)]:
        d = iwae_bound(model.hvae, np.repeat(x, reps, axis=0), k, seed=k).reshape(4, reps)
        bounds[k] = d.mean(1), d.std(1) / np.sqrt(reps)
    (l10, se10), (l500, se500) = bounds[10], bounds[500]
    assert np.all(l1 + 4 * np.hypot(se1, se10) < l10)
    assert np.all(l10 + 4 * np.hypot(se10, se500) < l500)
    assert np.all(l500 < truth + 5 * se500 + 1e-3)
    assert np.all(l1 + 5 * se1 < truth)


def test_sampler_uses_the_prior_as_it_is_when_called(mixture_model):
    """A sampler built before the prior changes scores the changed prior (its parameters are read
    at each call, not when the sampler is built): same numbers as a sampler built afterwards."""
    x = _sample_x(mixture_model, 3, seed=8)
    prior = mixture_model.vae.prior
    saved = prior.means.numpy()
    early = ImportanceSampler(mixture_model.vae, 200)
    before = early(x, seed=1)
    try:
        prior.means.assign(saved + 0.7)
        after_early = early(x, seed=1)
        after_fresh = ImportanceSampler(mixture_model.vae, 200)(x, seed=1)
    finally:
        prior.means.assign(saved)
    np.testing.assert_array_equal(after_early, after_fresh)
    assert np.all(np.abs(after_early - before) > 1e-3)


def test_monte_carlo_error_matches_the_spread_of_repeated_estimates(approx_model, images):
    """The per-image Monte Carlo standard error the sampler reports (from the effective sample
    size) agrees within 25% with the standard deviation of 300 independent S=100 estimates."""
    x = images[:3]
    sampler = ImportanceSampler(approx_model.vae, 100)
    runs = np.stack([sampler(x, seed=s) for s in range(300)])
    reported = sampler.evaluate(x, seed=999).mc_stderr
    np.testing.assert_allclose(reported, runs.std(0), rtol=0.25)


@pytest.mark.slow
@pytest.mark.skipif(backend.NAME != "tensorflow", reason="trains with the paper-protocol trainer (TensorFlow)")
def test_bfloat16_matmul_inputs_change_a_trained_models_log_likelihood_by_under_a_hundredth(datasets):
    """Importance sampling with bfloat16 matmul inputs (float32 accumulation), on a VAE trained for
    3 epochs on 4000 static-MNIST images: the mean test log-likelihood moves by less than 0.01 nats from
    the float32 one (same samples), while single images do move (the option really does something)."""
    from vae_lib.pipeline.config import make_config
    from vae_lib.pipeline.build import build_model, reduced_splits
    from vae_lib.pipeline.trainer import Trainer

    config = dataclasses.replace(  # 3 epochs, not the quick profile's floor of 3000 steps
        make_config("static_mnist", "vampprior", "quick", epochs=3, max_train=4000, max_test=200),
        min_steps=None)
    data = reduced_splits(datasets["static_mnist"], config)
    model = build_model(config, data)
    Trainer(model, config, progress=False).fit(data.train, data.valid)
    f32 = ImportanceSampler(model, 500)(data.test, seed=4)
    bf16 = ImportanceSampler(model, 500, matmul_inputs="bfloat16")(data.test, seed=4)
    assert abs(bf16.mean() - f32.mean()) < 0.01
    assert np.abs(bf16 - f32).max() > 1e-4


def test_a_sampler_made_before_the_model_is_built_scores_the_weights_as_they_are_at_each_call():
    """The sampler may be made before the model has weights, and compiled before they change (on
    JAX its compiled pass takes the weights as an argument): after the weights are halved, it gives
    what a sampler made then gives, and not its first answer."""
    x = (np.random.default_rng(0).random((16, 12)) < 0.3).astype(np.float32)
    encoder, decoder = keras.layers.Dense(6), keras.layers.Dense(12)  # weights made when the model is built
    model = VAE(encoder, decoder, MixtureOfGaussians(4), seed=1)
    early = ImportanceSampler(model, 20)
    first = early(x, seed=1)
    for v in model.trainable_variables:
        v.assign(v.numpy() * 0.5)
    np.testing.assert_array_equal(early(x, seed=1), ImportanceSampler(model, 20)(x, seed=1))
    assert np.abs(early(x, seed=1) - first).max() > 1e-3
