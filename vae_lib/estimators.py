"""Estimators: reducers over what a model returns (see :mod:`vae_lib.models`), per image, in nats.

    ELBO                   -(distortion + rate)            from ``model.elbo_terms``
    log p(x) (IWAE bound)  logsumexp_s log w_s - log S     from ``model.log_weights``

Nothing here knows which model or prior it is given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from keras import ops

from . import backend
from .errors import ConfigError, check_choice
from .networks import matmul_inputs
from .progress import progress_bar
from .seeds import stateless_seed

MATMUL_INPUTS = ("float32", "bfloat16")
# Where bfloat16 matmul inputs keep the test log-likelihood within 0.01 nats of float32: binary
# images. An 8-bit likelihood's bins are narrower than the rounding bfloat16 leaves in the decoder's
# means (benchmarks/README.md), so it is refused there.
BFLOAT16_LIKELIHOODS = ("bernoulli",)


def check_matmul_inputs(matmul_inputs: str, likelihood) -> str:
    """``matmul_inputs`` if the importance sampler may use it with ``likelihood`` (a Likelihood
    or its name), else a ConfigError saying why not."""
    check_choice("matmul input type", matmul_inputs, MATMUL_INPUTS)
    name = getattr(likelihood, "name", likelihood)
    if matmul_inputs == "bfloat16" and name not in BFLOAT16_LIKELIHOODS:
        named = f"the {name}" if name else "an unnamed"
        raise ConfigError(f"bfloat16 matmul inputs are for binary images only: with {named} "
                          f"likelihood they can move the test log-likelihood by tenths of a nat. "
                          f"Use float32 (the default).")
    return matmul_inputs


@dataclass
class ImportanceResult:
    """Per-image results of one importance-sampling evaluation.

    ``log_px``: the estimates log (1/S) sum_s w_s (nats). ``ess``: the effective sample size
    (sum w)^2 / sum w^2 of each image's S weights. ``mc_stderr``: the Monte Carlo standard error of
    each estimate by the delta method, sqrt((1/ESS - 1/S)), in nats: how far another set of S
    samples would move it (reliable only when ESS is not tiny)."""

    log_px: np.ndarray
    ess: np.ndarray
    num_samples: int

    @property
    def mc_stderr(self) -> np.ndarray:
        return np.sqrt(np.maximum(1.0 / self.ess - 1.0 / self.num_samples, 0.0))

    def mean_mc_stderr(self) -> float:
        """Monte Carlo standard error of the mean log-likelihood over the images."""
        return float(np.sqrt(np.sum(self.mc_stderr ** 2)) / len(self.log_px))


class ImportanceSampler:
    """Importance-sampled log p(x) with S samples from the model's q as the proposal:

        log p(x) ~ logsumexp_s [log p(x, z_s) - log q(z_s|x)] - log S,

    which is also the IWAE bound L_S (a lower bound in expectation, tight as S grows).
    Work is done in passes of at most ``rows_per_pass`` (image, sample) pairs, so S=5000 fits in
    memory; the prior's parameters are computed once per call (the VampPrior's pseudo-inputs are
    encoded once per evaluation, with the model as it is then) and each pass is one compiled call.
    """

    def __init__(self, model, num_samples: int, rows_per_pass: int | None = None, jit_compile=True,
                 matmul_inputs="float32"):
        """``matmul_inputs="bfloat16"``: the passes' matmuls (of the model's :class:`~vae_lib.networks.Linear`
        layers) take bfloat16 inputs and accumulate in float32 (see
        :func:`vae_lib.networks.matmul_inputs`); faster, and not bit-identical; for binary images
        only (:data:`BFLOAT16_LIKELIHOODS`)."""
        if num_samples <= 0:
            raise ConfigError(f"The number of importance samples must be positive, got {num_samples}.")
        self.model, self.num_samples = model, int(num_samples)
        self.matmul_inputs = check_matmul_inputs(matmul_inputs, model.likelihood)
        # the model's own size where it has one (convolutional activations are large), else 8192
        rows_per_pass = rows_per_pass or getattr(model, "rows_per_pass", 8192)
        self.samples_per_pass = min(self.num_samples, rows_per_pass)
        self.images_per_pass = max(1, rows_per_pass // self.samples_per_pass)
        self._pass = backend.compile_function(self._pass_fn, model, jit_compile, static_argnums=(3,))

    def _pass_fn(self, x, totals, seed, num_samples, prior_params):
        """One compiled pass: ``totals`` (logsumexp of w and of w^2 so far) logaddexp those of
        ``num_samples`` more draws. Encoding the few images of a pass again each time costs far less
        than a call outside."""
        with matmul_inputs(self.model, self.matmul_inputs):  # read while tracing
            log_w = self.model.log_weights(x, seed, num_samples, prior_params)  # (S, B)
        chunk = ops.stack([ops.logsumexp(log_w, axis=0), ops.logsumexp(2.0 * log_w, axis=0)])
        return ops.logaddexp(totals, chunk)

    def evaluate(self, images, seed: int = 0, progress=None) -> ImportanceResult:
        """Per-image log p(x) estimates and effective sample sizes for ``images`` of shape (N, ...).
        ``progress``: True for a progress bar over the images, or a bar of one's own (anything
        with ``update(n)``)."""
        if progress is True:
            with progress_bar(len(images), f"log p(x), S={self.num_samples}", "img") as bar:
                return self.evaluate(images, seed, bar)
        log_px = np.empty(len(images), np.float64)
        ess = np.empty(len(images), np.float64)
        for start, pass_log_px, pass_ess in self.passes(images, seed):
            log_px[start:start + len(pass_log_px)] = pass_log_px
            ess[start:start + len(pass_ess)] = pass_ess
            if progress is not None and progress is not False:
                progress.update(len(pass_log_px))
        return ImportanceResult(log_px, ess, self.num_samples)

    def passes(self, images, seed: int = 0, start: int = 0):
        """The evaluation of ``images`` a pass at a time, from image ``start`` on: yields
        ``(first, log_px, ess)`` for the images ``first, first + 1, ...`` of each pass, in order.

        A pass's draws depend only on ``seed`` and the index of its first image, so an evaluation
        cut short can go on from the first image of any pass (``start`` a multiple of
        :attr:`images_per_pass`) and give exactly the numbers of one that was not; this is what
        lets a long evaluation keep its work across an interruption."""
        if start % self.images_per_pass or not 0 <= start <= len(images):
            raise ConfigError(f"An evaluation can go on only from the first image of a pass (a multiple of "
                              f"{self.images_per_pass} within the {len(images)} images), not from image {start}.")
        return self._passes(images, seed, start)

    def _passes(self, images, seed, start):
        images = self.model.check_images(images)
        self.model.ensure_built(images)
        prior_params = self.model.prior_params()  # now, not when the sampler was built
        for first in range(start, len(images), self.images_per_pass):
            x = ops.convert_to_tensor(images[first:first + self.images_per_pass])
            totals = ops.full((2, x.shape[0]), -np.inf)
            done = 0
            while done < self.num_samples:
                n = min(self.samples_per_pass, self.num_samples - done)
                totals = self._pass(x, totals, stateless_seed(seed, "importance", first * self.num_samples + done),
                                    backend.static_int(n), prior_params)
                done += n
            lse_w, lse_w2 = ops.convert_to_numpy(totals).astype(np.float64)
            yield first, lse_w - math.log(self.num_samples), np.exp(2 * lse_w - lse_w2)

    def __call__(self, images, seed: int = 0, progress=None) -> np.ndarray:
        """Per-image log p(x) estimates (nats)."""
        return self.evaluate(images, seed, progress).log_px


def sampler_for(model, num_samples: int, **kwargs) -> ImportanceSampler:
    """The model's :class:`ImportanceSampler` for these settings, made once and kept on the model,
    so that repeated calls (every epoch, every k of an IWAE curve) do not compile it again."""
    samplers = model.__dict__.setdefault("_vae_lib_samplers", {})  # not a Keras-tracked attribute
    key = (int(num_samples), tuple(sorted(kwargs.items())))
    if key not in samplers:
        samplers[key] = ImportanceSampler(model, num_samples, **kwargs)
    return samplers[key]


def log_likelihood(model, images, num_samples=5000, seed=0, progress=None, **kwargs) -> np.ndarray:
    """Per-image importance-sampled log p(x) in nats with ``num_samples`` samples per image; see
    :class:`ImportanceSampler` (``kwargs``: its settings). ``progress=True`` draws a bar."""
    return sampler_for(model, num_samples, **kwargs)(images, seed=seed, progress=progress)


def iwae_bound(model, images, k, seed=0, **kwargs) -> np.ndarray:
    """Per-image IWAE bound L_k: the same estimator as :func:`log_likelihood` with S = k."""
    return log_likelihood(model, images, num_samples=k, seed=seed, **kwargs)


def elbo(model, images, seed=0, batch_size=1000, purpose="test_elbo") -> np.ndarray:
    """Per-image single-sample ELBO (nats), -(distortion + rate)."""
    images = model.check_images(images)
    model.ensure_built(images)
    out = []
    for start in range(0, len(images), batch_size):
        d, r = model.elbo_terms(ops.convert_to_tensor(images[start:start + batch_size]),
                                stateless_seed(seed, purpose, start))
        out.append(-ops.convert_to_numpy(d + r))
    return np.concatenate(out).astype(np.float64)


def paired_difference(log_px, baseline_log_px) -> tuple[float, float]:
    """(mean, standard error) over the images of ``log_px - baseline_log_px``: two models' per-image
    log-likelihoods of the same images, compared image by image (far tighter than the difference
    of their means, as images that are hard for one model are hard for the other)."""
    if np.shape(log_px) != np.shape(baseline_log_px) or np.ndim(log_px) != 1:
        raise ConfigError(f"paired_difference needs two per-image arrays of one shape, got "
                          f"{np.shape(log_px)} and {np.shape(baseline_log_px)}.")
    d = np.asarray(log_px, np.float64) - np.asarray(baseline_log_px, np.float64)
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")


def bits_per_dim(log_likelihood_nats, num_dims: int):
    """Negative log-likelihood in bits per dimension."""
    return -np.asarray(log_likelihood_nats) / (num_dims * math.log(2))
