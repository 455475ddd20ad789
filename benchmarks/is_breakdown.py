"""Where importance sampling's time goes: one S=5000 evaluation of a VampPrior VAE (K=500, paper
networks) on static MNIST, timed whole for several pass sizes with and without XLA, and taken apart
into its pieces (the decoder's matmuls alone, the decoder with its gates, with its Bernoulli
likelihood, the mixture prior), each compiled on its own for the same (5000 x 40) latent draws.
The model is untrained: the time does not depend on the weights' values.

    python benchmarks/is_breakdown.py [--images 40]

Times are scaled to the 10000 test images. Not part of the tests; stop other work while it runs.
"""
from __future__ import annotations

import os
import argparse
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads: quiet its C++ start-up lines
import tensorflow as tf

from vae_lib.pipeline.config import make_config
from vae_lib.datasets import load_dataset
from vae_lib.estimators import ImportanceSampler
from vae_lib.pipeline.build import build_model
from vae_lib.pipeline.provenance import hardware, hardware_label

S = 5000


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=40)
    args = parser.parse_args(argv)
    config = make_config("static_mnist", "vampprior", "paper")
    data = load_dataset("static_mnist")
    model = build_model(config, data)
    images, scale = data.test[:args.images], 10_000 / args.images
    latent, hidden, pixels = config.latent_dim, config.hidden_units, data.input_dim
    # gated layers: one matmul to 2 x hidden; the last layer to the pixels' logits
    decoder_flops = 2 * S * (latent * 2 * hidden + hidden * 2 * hidden + hidden * pixels)
    print(f"{hardware_label(hardware())}, TensorFlow {tf.__version__}; VampPrior K={config.components}, S={S}, timed on {args.images} images, "
          f"seconds per 10000 images")

    def whole(label, **kwargs):
        sampler = ImportanceSampler(model, S, **kwargs)
        sampler(images[:sampler.images_per_pass])  # compiles
        started = time.perf_counter()
        sampler(images)
        seconds = (time.perf_counter() - started) * scale
        gflops = decoder_flops * 10_000 / seconds / 1e9
        print(f"  {label:44s} {seconds:6.0f} s  ({gflops:5.1f} GFLOP/s on decoder matmuls)")

    print("whole evaluation:")
    for rows in (1000, 2500, 8192, 20000):
        whole(f"passes of {rows} rows, XLA", rows_per_pass=rows)
    whole("passes of 8192 rows, no XLA", jit_compile=False)

    z = tf.random.normal([S, 1, latent])
    x = tf.constant(images[:1])
    decoder, prior, prior_params = model.decoder, model.prior, model.prior_params()
    weights = [tf.random.normal(shape) for shape in ((latent, 2 * hidden), (hidden, 2 * hidden), (hidden, pixels))]

    def matmuls_only(z):
        h = tf.reshape(z, [S, latent])
        h = tf.matmul(h, weights[0])[:, :hidden]
        h = tf.matmul(h, weights[1])[:, :hidden]
        return tf.reduce_sum(tf.matmul(h, weights[2]))

    pieces = [("decoder matmuls alone", matmuls_only),
              ("decoder (with gates) to logits", lambda z: tf.reduce_sum(decoder(z))),
              ("decoder and Bernoulli likelihood",
               lambda z: tf.reduce_sum(model.likelihood.log_prob(x, model.decode(decoder, z)))),
              ("mixture prior log-density", lambda z: tf.reduce_sum(prior.log_prob(z, prior_params)))]
    print("pieces, one 5000-sample pass per image:")
    for label, fn in pieces:
        fn = tf.function(fn, jit_compile=True)
        fn(z).numpy()
        started = time.perf_counter()
        for _ in range(args.images):
            fn(z).numpy()
        print(f"  {label:44s} {(time.perf_counter() - started) * scale:6.0f} s")


if __name__ == "__main__":
    main()
