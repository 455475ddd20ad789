"""VAE with a VampPrior (Tomczak & Welling, AISTATS 2018) in TensorFlow.

The pieces, one module each (see the README's layout): ``datasets``, ``densities``, ``networks``,
``priors``, ``models`` (VAE, HVAE), ``estimators``, ``training``, ``experiment`` (one run),
``rundir`` and ``records`` (run directories written and read back), ``runner`` (the report grid),
``results``, ``config`` and ``cli``. Importing ``vae_lib`` loads none of TensorFlow; the modules
that need it do.
"""
import os

# TensorFlow's C++ INFO and WARNING lines (oneDNN, CPU features, CUDA probing) are noise here;
# this applies to a TensorFlow loaded after vae_lib. Set TF_CPP_MIN_LOG_LEVEL=0 to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from .errors import ConfigError, DataError, TrainingError, VaeLibError  # noqa: E402

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataError", "TrainingError", "VaeLibError", "__version__"]
