"""Import TensorFlow without the C++ log lines it prints before its logging is set up.

Those lines (oneDNN, CUDA probing) ignore TF_CPP_MIN_LOG_LEVEL and go straight to file descriptor
2, where notebooks capture them as cell output. When TF_CPP_MIN_LOG_LEVEL asks for quiet (>= 2),
fd 2 points at /dev/null for the length of the import only; Python errors still propagate.
"""
import os
import sys


def import_tensorflow():
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") < "2":
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
