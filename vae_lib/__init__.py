"""VAE with a VampPrior (Tomczak & Welling, AISTATS 2018) in TensorFlow.

The pieces, one module each: ``datasets`` (canonical files, fixed splits), ``densities``,
``priors`` (standard, vampprior, vampprior_data, mog), ``model`` (encoder, decoder, VAE),
``estimators`` (ELBO, importance-sampled log-likelihood), ``training``, ``experiment`` (one run
into a run directory), ``config`` (settings and profiles) and ``cli``.
"""
from ._quiet import import_tensorflow
from .errors import ConfigError, DataError, TrainingError, VaeLibError

import_tensorflow()

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataError", "TrainingError", "VaeLibError", "__version__"]
