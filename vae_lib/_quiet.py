"""Import TensorFlow without the C++ log lines it prints on import.

TensorFlow's C++ INFO/WARNING/ERROR lines (oneDNN, CPU features, CUDA probing on machines without a
GPU) reach file descriptor 2, where notebooks capture them as cell output and nbval sees them.
Unless the user set TF_CPP_MIN_LOG_LEVEL, vae_lib sets it to 3; some lines are printed before
TensorFlow's logging reads it, so fd 2 also points at /dev/null for the length of the import.
Python errors still propagate. Set TF_CPP_MIN_LOG_LEVEL=0 to see everything.
"""
import os
import sys


def import_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules or os.environ["TF_CPP_MIN_LOG_LEVEL"] < "2":
        import tensorflow  # noqa: F401
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
