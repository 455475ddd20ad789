"""Where a training step's time goes: one epoch (500 steps of 100 static-MNIST images) of a VAE
with the paper's networks and the VampPrior (K=500), compiled as the trainer compiles it (one XLA
call per epoch), in three forms: the forward pass alone, the forward pass and the gradients, and the
whole step with the Adam update. The model is untrained: the time does not depend on the weights.

    python benchmarks/step_breakdown.py [--prior vampprior] [--repeats 3]

Each form twice, alternating, median of ``--repeats`` epochs each. Not part of the tests; stop
other work while it runs.
"""
from __future__ import annotations

import os
import argparse
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads: quiet its C++ start-up lines
import numpy as np
import tensorflow as tf

from vae_lib.pipeline.config import make_config
from vae_lib.datasets import load_dataset
from vae_lib.pipeline.build import build_model
from vae_lib.pipeline.provenance import hardware, hardware_label
from vae_lib.pipeline.registry import PRIORS
from vae_lib.pipeline.trainer import Trainer


def epoch_fn(model, optimizer, data, batches, form):
    """One compiled epoch of ``form``: 'forward', 'gradients' or 'step' (gradients + Adam)."""
    variables = model.trainable_variables

    def body(i, total):
        x = tf.gather(data, batches[i])
        seed = tf.stack([tf.constant(7, tf.int64), tf.cast(i, tf.int64)])
        if form == "forward":
            distortion, rate = model.elbo_terms(x, seed)
            return i + 1, total + tf.reduce_mean(distortion + rate)
        with tf.GradientTape() as tape:
            distortion, rate = model.elbo_terms(x, seed)
            loss = tf.reduce_mean(distortion + rate)
        grads = tape.gradient(loss, variables)
        if form == "step":
            optimizer.apply_gradients(zip(grads, variables))
            return i + 1, total + loss
        # keep every gradient alive (XLA would drop unused ones) at the cost of one read each
        return i + 1, total + loss + tf.add_n([tf.reduce_sum(g) * 0.0 for g in grads])

    steps = int(batches.shape[0])
    return tf.function(lambda: tf.while_loop(lambda i, _: i < steps, body,
                                             (tf.constant(0), tf.constant(0.0)))[1],
                       jit_compile=True, autograph=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prior", default="vampprior", choices=list(PRIORS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    config = make_config("static_mnist", args.prior, "paper")
    dataset = load_dataset("static_mnist")
    model = build_model(config, dataset)
    optimizer = Trainer(model, config, progress=False).optimizer
    data = tf.constant(dataset.train)
    order = np.random.default_rng(0).permutation(len(dataset.train))
    batches = tf.constant(order[:len(order) // 100 * 100].reshape(-1, 100), tf.int32)
    print(f"{hardware_label(hardware())}, TensorFlow {tf.__version__}; {args.prior}, "
          f"{int(batches.shape[0])} steps of 100 images, seconds per epoch (median of {args.repeats})")
    for form in ("forward", "gradients", "step") * 2:
        fn = epoch_fn(model, optimizer, data, batches, form)
        fn().numpy()  # compile
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            fn().numpy()
            seconds.append(time.perf_counter() - started)
        print(f"  {form:10s} {statistics.median(seconds):6.2f} s  ({', '.join(f'{s:.2f}' for s in seconds)})",
              flush=True)


if __name__ == "__main__":
    main()
