"""The core on JAX. The tests marked ``portable`` (the closed-form estimator tests, fit's loss against
a hand-computed ELBO, one Adam step per variable, save and load, the estimator against scipy on
the model's own log-weights, clear errors) are written in ``keras.ops``; here they run again in a
fresh interpreter under KERAS_BACKEND=jax, where Keras' fit calls the models' stateless train
step."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import pytest

REPO = Path(__file__).resolve().parent.parent
PORTABLE_MODULES = ["tests/test_estimators.py", "tests/test_api.py", "tests/test_backends.py"]


def _on_jax(args, timeout=1200):
    # XLA's CPU code unoptimised by LLVM: these small tests are mostly JAX's compiling (a third less
    # CPU time for the portable tests); what they check, numbers against references, holds either way
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
               XLA_FLAGS=" ".join([os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0"]).strip())
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _need_jax():
    if importlib.util.find_spec("jax") is None:
        pytest.fail("JAX is not installed: pip install -e '.[jax]' (the dev extra includes it).")


@pytest.mark.slow
def test_the_portable_tests_pass_on_jax():
    _need_jax()
    done = _on_jax(["-m", "pytest", "-m", "portable and not slow", "-n", "0", "-q", "-p", "no:cacheprovider",
                    *PORTABLE_MODULES])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", done.stdout).group(1))
    assert passed >= 25 and "failed" not in done.stdout, done.stdout[-2000:]


@pytest.mark.portable
def test_the_backend_is_the_one_asked_for():
    """Keras and the core run on KERAS_BACKEND (TensorFlow when it is not set)."""
    from vae_lib import backend

    assert keras.backend.backend() == backend.NAME == os.environ.get("KERAS_BACKEND", "tensorflow")


@pytest.mark.slow
def test_the_core_trains_and_evaluates_on_jax_without_loading_tensorflow():
    """A VampPrior VAE of the paper's gated layers, fit (compiled by JAX) and importance sampling on
    JAX, in a process where TensorFlow is never imported."""
    _need_jax()
    code = """
import sys
import keras, numpy as np
import vae_lib
from vae_lib.networks import GaussianMLP, MLPDecoder
x = (np.random.default_rng(0).random((64, 20)) < 0.3).astype("float32")
model = vae_lib.VAE(GaussianMLP(4, hidden_units=16), MLPDecoder(20, hidden_units=16), vae_lib.VampPrior(5), seed=1)
model.compile(optimizer=keras.optimizers.Adam(1e-2))
history = model.fit(x, validation_data=(x[:16],), epochs=3, batch_size=16, verbose=0).history
ll = vae_lib.log_likelihood(model, x[:8], num_samples=64)
print(keras.backend.backend(), history["loss"][-1] < history["loss"][0], np.isfinite(ll).all(),
      "tensorflow" in sys.modules)
"""
    done = _on_jax(["-c", code], timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-4:] == ["jax", "True", "True", "False"], done.stdout
