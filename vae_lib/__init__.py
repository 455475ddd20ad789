"""VAE with a VampPrior (Tomczak & Welling, AISTATS 2018) for Keras, on TensorFlow or JAX.

The core, what a practitioner imports: the models (:class:`VAE`, :class:`HVAE`, and the paper's
convolutional :class:`ConvHVAE` and :class:`PixelHVAE`), the priors
(:class:`StandardNormal`, :class:`VampPrior` and ``VampPrior.from_data``,
:class:`MixtureOfGaussians`), the likelihoods (:class:`Bernoulli`, :class:`DiscretizedLogistic`),
the estimators (:func:`log_likelihood`, :func:`iwae_bound`, :func:`elbo`, :func:`bits_per_dim`),
the paper's training protocol as Keras callbacks (:class:`KLWarmup`, :class:`PaperEarlyStopping`)
and optimizer (:class:`AdamNormGrad`), the paper's networks (:mod:`vae_lib.networks`) and
datasets (:func:`load_dataset`)::

    model = vae_lib.VAE(encoder, decoder, vae_lib.VampPrior(500), likelihood="bernoulli")
    model.compile(optimizer=keras.optimizers.Adam(5e-4))
    model.fit(x_train, validation_data=(x_valid,), epochs=..., callbacks=[vae_lib.KLWarmup(100)])
    vae_lib.log_likelihood(model, x_test, num_samples=5000)

The reproduction of the paper (run settings and profiles, the grid of runs, their records, the
report, the ``vampprior`` command) is the subpackage :mod:`vae_lib.pipeline`, which imports the
core and never the other way round.

The core is written in ``keras.ops`` and runs on the TensorFlow and JAX backends
(``KERAS_BACKEND``; :mod:`vae_lib.backend` holds what differs); the pipeline runs on TensorFlow.
Importing ``vae_lib`` loads no TensorFlow and changes nothing in the process: the names above load
their module at first use.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .errors import ConfigError, DataError, TrainingError, VaeLibError

__version__ = "0.1.0"

_LAZY = {  # public name -> the core module that defines it
    "VAE": "models", "HVAE": "models", "ConvHVAE": "models", "PixelHVAE": "models",
    "LatentVariableModel": "models", "load_model": "models",
    "StandardNormal": "priors", "VampPrior": "priors", "MixtureOfGaussians": "priors", "Prior": "priors",
    "Bernoulli": "likelihoods", "DiscretizedLogistic": "likelihoods", "Likelihood": "likelihoods",
    "log_likelihood": "estimators", "iwae_bound": "estimators", "elbo": "estimators",
    "bits_per_dim": "estimators", "ImportanceSampler": "estimators", "paired_difference": "estimators",
    "KLWarmup": "callbacks", "PaperEarlyStopping": "callbacks",
    "AdamNormGrad": "optimizers",
    "load_dataset": "datasets",
}

# the core's modules, loaded at first use too (``vae_lib.priors.MixturePrior`` works without an import)
_SUBMODULES = ("backend", "callbacks", "convnets", "datasets", "densities", "estimators", "likelihoods",
               "models", "networks", "optimizers", "plots", "priors", "progress", "schedule", "seeds")

__all__ = sorted(_LAZY) + ["ConfigError", "DataError", "TrainingError", "VaeLibError", "__version__"]

if TYPE_CHECKING:  # what the lazy names are, for readers and tools
    from .callbacks import KLWarmup, PaperEarlyStopping
    from .datasets import load_dataset
    from .estimators import (ImportanceSampler, bits_per_dim, elbo, iwae_bound, log_likelihood,
                             paired_difference)
    from .likelihoods import Bernoulli, DiscretizedLogistic, Likelihood
    from .models import HVAE, VAE, ConvHVAE, LatentVariableModel, PixelHVAE, load_model
    from .optimizers import AdamNormGrad
    from .priors import MixtureOfGaussians, Prior, StandardNormal, VampPrior


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)  # (the import binds it here)
    raise AttributeError(f"module 'vae_lib' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
