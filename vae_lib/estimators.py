"""ELBO and importance-sampled log-likelihood, per image, in nats.

The model is anything with ``encoder(x) -> (mean, logvar)``, ``log_px_given_z(x, z)`` and a
``prior`` with ``log_prob`` (and ``analytic_kl`` where ``prior.has_analytic_kl``): the VAE of
:mod:`vae_lib.model`, or a small model in the tests with a closed-form marginal.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from .densities import RNG_ALG, log_normal_diag


def reparameterize(mean, logvar, seed, num_samples=None):
    """z = mean + sigma * eps; with ``num_samples`` S, shape (S, *mean.shape)."""
    shape = tf.shape(mean) if num_samples is None else tf.concat([[num_samples], tf.shape(mean)], 0)
    eps = tf.random.stateless_normal(shape, seed=seed, dtype=mean.dtype, alg=RNG_ALG)
    return mean + tf.exp(0.5 * logvar) * eps


def elbo_terms(model, x, seed):
    """Per-image distortion -log p(x|z) and rate KL(q(z|x) || p(z)), one z ~ q(z|x) each.

    The rate is the closed-form KL where it is exact (standard prior) and the single-sample
    Monte Carlo estimate log q(z|x) - log p(z) otherwise. ELBO = -(distortion + rate).
    """
    mean, logvar, prior = model.prior.encode_batch(model.encoder, x)
    z = reparameterize(mean, logvar, seed)
    distortion = -model.log_px_given_z(x, z)
    if prior.has_analytic_kl:
        rate = prior.analytic_kl(mean, logvar)
    else:
        rate = log_normal_diag(z, mean, logvar) - prior.log_prob(z)
    return distortion, rate


def _log_weight_chunk(model, prior, x, mean, logvar, seed, num_samples):
    """logsumexp over ``num_samples`` draws z_s ~ q(z|x) of log p(x|z_s) + log p(z_s) - log q(z_s|x)."""
    z = reparameterize(mean, logvar, seed, num_samples)  # (S, B, D)
    log_w = model.log_px_given_z(x, z) + prior.log_prob(z) - log_normal_diag(z, mean, logvar)
    return tf.reduce_logsumexp(log_w, axis=0)


class ImportanceSampler:
    """Importance-sampled log p(x) with S samples from q(z|x) as the proposal:

        log p(x) ~ logsumexp_s [log p(x|z_s) + log p(z_s) - log q(z_s|x)] - log S,

    which is also the IWAE bound L_S (a lower bound in expectation, tight as S grows).
    Work is done in passes of about ``rows_per_pass`` (image, sample) pairs, so S=5000 fits in
    memory; the prior is frozen once (the VampPrior's pseudo-inputs are encoded once per
    evaluation, not per pass) and each pass is one compiled call.
    """

    def __init__(self, model, num_samples: int, rows_per_pass: int = 8192, jit_compile=True):
        if num_samples <= 0:
            from .errors import ConfigError
            raise ConfigError(f"The number of importance samples must be positive, got {num_samples}.")
        self.model, self.num_samples = model, int(num_samples)
        self.samples_per_pass = min(self.num_samples, rows_per_pass)
        self.images_per_pass = max(1, rows_per_pass // self.samples_per_pass)
        self.prior = model.prior.frozen()
        self._pass = tf.function(self._pass_fn, jit_compile=jit_compile, reduce_retracing=True)

    def _pass_fn(self, x, total, seed, num_samples):
        """One compiled pass: ``total`` logaddexp the log-weights of ``num_samples`` more draws.
        Encoding the few images of a pass again each time costs far less than a call outside."""
        mean, logvar = self.model.encoder(x)
        chunk = _log_weight_chunk(self.model, self.prior, x, mean, logvar, seed, num_samples)
        return tf.experimental.numpy.logaddexp(total, chunk)

    def __call__(self, images, seed: int = 0, progress=None) -> np.ndarray:
        """Per-image log p(x) estimates (nats) for ``images`` of shape (N, D)."""
        images = np.asarray(images, np.float32)
        out = np.empty(len(images), np.float64)
        for start in range(0, len(images), self.images_per_pass):
            x = tf.constant(images[start:start + self.images_per_pass])
            total = tf.fill([x.shape[0]], -np.inf)
            done = 0
            while done < self.num_samples:
                n = min(self.samples_per_pass, self.num_samples - done)
                seed_t = tf.constant([seed, start * self.num_samples + done], tf.int64)
                total = self._pass(x, total, seed_t, tf.constant(n))
                done += n
            out[start:start + len(x)] = total.numpy() - math.log(self.num_samples)
            if progress is not None:
                progress.update(len(x))
        return out


def log_likelihood(model, images, num_samples=5000, seed=0, progress=None, **kwargs) -> np.ndarray:
    """Per-image importance-sampled log p(x) in nats; see :class:`ImportanceSampler`."""
    return ImportanceSampler(model, num_samples, **kwargs)(images, seed=seed, progress=progress)


def iwae_bound(model, images, k, seed=0, **kwargs) -> np.ndarray:
    """Per-image IWAE bound L_k: the same estimator as :func:`log_likelihood` with S = k."""
    return log_likelihood(model, images, num_samples=k, seed=seed, **kwargs)


def elbo(model, images, seed=0, batch_size=1000) -> np.ndarray:
    """Per-image single-sample ELBO (nats), -(distortion + rate)."""
    images = np.asarray(images, np.float32)
    out = []
    for start in range(0, len(images), batch_size):
        d, r = elbo_terms(model, tf.constant(images[start:start + batch_size]),
                          tf.constant([seed, start], tf.int64))
        out.append(-(d + r).numpy())
    return np.concatenate(out).astype(np.float64)


def bits_per_dim(log_likelihood_nats, num_dims: int):
    """Negative log-likelihood in bits per dimension."""
    return -np.asarray(log_likelihood_nats) / (num_dims * math.log(2))
