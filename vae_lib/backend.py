"""What the core needs that differs between Keras backends: stateless random draws, the few
matmuls whose tuned form has no ``keras.ops`` spelling, compiling a function of a model, and
feeding arrays to ``fit``. Everything else in the core is ``keras.ops``.

The core runs on TensorFlow (the default, and the reproduction pipeline's engine) and on JAX
(``KERAS_BACKEND=jax``, with ``pip install "vae_lib[jax]"``). On TensorFlow each function here is
the TensorFlow code the project's records were computed with (Philox draws, ``transpose_b``
matmuls, ``tf.function``), so that writing the core in ``keras.ops`` kept their numbers (to float32
rounding).

A *seed* is a (2,) integer tensor, a draw's stateless key: ``[stream key, counter]`` (see
:mod:`vae_lib.seeds`). TensorFlow's stateless ops take it as int64; JAX takes it as a uint32 raw
key of its default generator. The same seed draws different numbers on the two backends (and on
TensorFlow with and without XLA): a run is reproducible on its own backend and compile setting.
"""
from __future__ import annotations

import numbers

import keras
import numpy as np

from .errors import ConfigError

NAME = keras.backend.backend()
BACKENDS = ("tensorflow", "jax")
# The random algorithm of every stateless TensorFlow draw. The default ("auto_select") becomes a
# random-bit generator under XLA on CPU that is 25x slower than Philox; Philox is fast with and
# without XLA.
RNG_ALG = "philox"


def check_backend():
    """Raise a clear error on a Keras backend the core does not run on."""
    if NAME not in BACKENDS:
        raise ConfigError(f"vae_lib runs on the TensorFlow and JAX Keras backends; this process "
                          f"uses {NAME!r}. Set KERAS_BACKEND=tensorflow (or jax) before Keras is "
                          f"imported.")


check_backend()

if NAME == "tensorflow":
    import tensorflow as tf

    def seed_pair(key, counter):
        """The seed ``[key, counter]``; ``counter`` may be a tensor (an optimizer's step)."""
        if isinstance(counter, numbers.Integral):
            return tf.constant([int(key), int(counter)], tf.int64)
        return tf.stack([tf.constant(int(key), tf.int64), tf.cast(counter, tf.int64)])

    def as_seed(value):
        """A (2,) integer tensor (a ``keras.random.SeedGenerator``'s draw) as a seed."""
        return tf.cast(value, tf.int64)

    def generator_seed(key: int) -> int:
        """A stream key as ``keras.random.SeedGenerator`` takes it here (int64 on TensorFlow)."""
        return int(key)

    def split_seed(seed, num: int):
        """``num`` independent seeds from one."""
        return tf.unstack(tf.random.experimental.stateless_split(seed, num))

    def normal(shape, seed, dtype="float32"):
        return tf.random.stateless_normal(shape, seed=seed, dtype=dtype, alg=RNG_ALG)

    def uniform(shape, seed, minval=0.0, maxval=1.0):
        return tf.random.stateless_uniform(shape, seed, minval=minval, maxval=maxval, alg=RNG_ALG)

    def randint(shape, seed, maxval):
        """Integers uniform in [0, maxval) (int32)."""
        return tf.random.stateless_uniform(shape, seed, minval=0, maxval=maxval, dtype=tf.int32,
                                           alg=RNG_ALG)

    def matmul_transposed(a, b):
        """a @ b^T (one matmul, no transpose materialised)."""
        return tf.matmul(a, b, transpose_b=True)

    def matmul_rounded(x, kernel, dtype):
        """x @ kernel with both rounded to ``dtype`` and accumulated in float32."""
        return tf.matmul(tf.cast(x, dtype), tf.cast(kernel, dtype), output_type=tf.float32)

    def compile_function(fn, model, jit_compile=True, static_argnums=()):
        """``fn`` compiled once per input signature. It may read ``model``'s variables, which it
        sees as they are at each call. ``static_argnums``: arguments that are Python values
        (JAX needs them static; TensorFlow passes them as tensors, so that a new value does not
        trace again).

        Each call makes a new function that traces once for its model; TensorFlow counts traces
        by the Python code traced, not by function, so scoring a sixth model warned of "excessive
        retracing". That warning is turned off for these functions only (TensorFlow's own flag,
        which it sets on functions it loads from SavedModels)."""
        compiled = tf.function(fn, jit_compile=jit_compile, reduce_retracing=True, autograph=False)
        compiled._omit_frequent_tracing_warning = True  # private; ignored if TensorFlow drops it
        return compiled

    def static_int(value):
        """An argument named in ``static_argnums``, in the form this backend passes it."""
        return tf.constant(int(value))

    def array_batches(images, batch_size: int, shuffle: bool):
        """A ``tf.data`` pipeline of an in-memory image array for ``fit``: batches of
        ``batch_size`` rows (the last one smaller), in a new random order each epoch with
        ``shuffle``, each gathered on one private thread with one batch prefetched. Keras' own
        array adapter gathers batches on autotuned parallel threads, which on a 2-core CPU take
        cores from the training step: its epochs ran up to twice as long, and at best 10% longer
        than the paper-protocol trainer's (benchmarks/README.md)."""
        data = tf.constant(np.asarray(images, np.float32))
        rows = tf.data.Dataset.range(len(images))
        if shuffle:
            rows = rows.shuffle(len(images), reshuffle_each_iteration=True)
        batches = rows.batch(batch_size).map(lambda index: tf.gather(data, index))
        options = tf.data.Options()
        options.threading.private_threadpool_size = 1
        options.autotune.enabled = False
        options.experimental_optimization.apply_default_optimizations = False
        return batches.with_options(options).prefetch(1)

else:
    import jax
    import jax.numpy as jnp

    def seed_pair(key, counter):
        if isinstance(counter, numbers.Integral):
            counter = int(counter) % 2**32
        return jnp.stack([jnp.asarray(int(key) % 2**32, jnp.uint32), jnp.asarray(counter).astype(jnp.uint32)])

    def as_seed(value):
        return jnp.asarray(value).astype(jnp.uint32)

    def generator_seed(key: int) -> int:
        return int(key) % 2**32  # JAX's generator state is uint32

    def split_seed(seed, num: int):
        keys = jax.random.split(seed, num)
        return [keys[i] for i in range(num)]

    def normal(shape, seed, dtype="float32"):
        return jax.random.normal(seed, tuple(shape), dtype=dtype)

    def uniform(shape, seed, minval=0.0, maxval=1.0):
        return jax.random.uniform(seed, tuple(shape), minval=minval, maxval=maxval)

    def randint(shape, seed, maxval):
        return jax.random.randint(seed, tuple(shape), 0, maxval, dtype=jnp.int32)

    def matmul_transposed(a, b):
        return jnp.matmul(a, b.T)

    def matmul_rounded(x, kernel, dtype):
        return jnp.matmul(x.astype(dtype), kernel.astype(dtype), preferred_element_type=jnp.float32)

    def compile_function(fn, model, jit_compile=True, static_argnums=()):
        # A jitted function must not read variables (they would be baked in as constants at
        # trace time): their values go in as an argument and the model reads them through a
        # StatelessScope. The variables are listed at each call (the model may be built after
        # this function is made).
        listed = {}

        def pure(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(listed["variables"], values))):
                return fn(*args)

        jitted = jax.jit(pure, static_argnums=tuple(i + 1 for i in static_argnums))
        value = lambda a: a.value if isinstance(a, keras.Variable) else a  # (a prior's parameters)

        def call(*args):
            listed["variables"] = list(model.variables)
            return jitted([v.value for v in listed["variables"]], *keras.tree.map_structure(value, args))

        return call

    def static_int(value):
        return int(value)

    array_batches = None  # Keras' own iterator feeds JAX
