"""Random streams: every purpose draws its randomness from its own stateless stream.

A stream is the pair ``[key, counter]`` given to the backend's stateless random draws
(:mod:`vae_lib.backend`), with
``key = seed * NUM_STREAMS + purpose``. Different purposes (training noise, validation, the test
ELBO, importance sampling, sampled images, dynamic binarization) therefore never share random
numbers, and each draw is a function of (seed, purpose, counter) alone, so a resumed run replays an
uninterrupted one and an evaluation does not depend on what ran before it. (Compiled with XLA,
TensorFlow's Philox draws other numbers from the same seed than without it, and JAX others again:
a run's numbers are reproducible for its backend and ``jit_compile`` setting, which its config
records.)
"""
from __future__ import annotations

STREAMS = ("train", "valid", "test_elbo", "importance", "samples", "binarize", "data_split")
NUM_STREAMS = 16  # room for more purposes without changing existing keys


def stream_key(seed: int, purpose: str) -> int:
    """The first half of the stateless seed of ``purpose`` for the run seed ``seed``."""
    return int(seed) * NUM_STREAMS + STREAMS.index(purpose)


def stateless_seed(seed: int, purpose: str, counter):
    """``[stream_key(seed, purpose), counter]`` as the backend's seed tensor, for its stateless
    random draws (``counter``: an int, or a tensor such as an optimizer's step)."""
    from .backend import seed_pair

    return seed_pair(stream_key(seed, purpose), counter)
