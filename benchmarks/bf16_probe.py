"""Does bfloat16 mixed precision pay for training on this CPU? Seconds per epoch on static MNIST,
float32 (the library's default, XLA) against Keras' ``mixed_bfloat16`` policy (layers compute in
bfloat16, weights and densities stay float32), with and without XLA, in one run.

    python benchmarks/bf16_probe.py [--epochs 3] [--out benchmarks/bf16_probe.json]

Only speed is measured: a precision that is not clearly faster is not worth checking for accuracy.
"""
from __future__ import annotations

import os
import argparse
import json
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads: quiet its C++ start-up lines
import keras

from bench import bench_training
from vae_lib.pipeline.config import make_config
from vae_lib.datasets import load_dataset
from vae_lib.pipeline.provenance import provenance

SETTINGS = [("float32", True), ("mixed_bfloat16", False), ("mixed_bfloat16", True)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per configuration")
    parser.add_argument("--data-dir")
    parser.add_argument("--out", default=str(Path(__file__).with_name("bf16_probe.json")))
    args = parser.parse_args(argv)

    dataset = load_dataset("static_mnist", args.data_dir)
    rows = []
    for prior, activation in [("vampprior", "gated"), ("vampprior", "relu"), ("standard", "gated")]:
        for policy, xla in SETTINGS:
            keras.mixed_precision.set_global_policy(policy)  # read when the layers are built
            cfg = make_config("static_mnist", prior, "paper", activation=activation, jit_compile=xla)
            result = bench_training(cfg, dataset, args.epochs)
            result.update(prior=prior, activation=activation, policy=policy, xla=xla)
            rows.append(result)
            print(f"{prior:10s} {activation:6s} {policy:15s} XLA={'on ' if xla else 'off'} "
                  f"{result['seconds_per_epoch']:6.2f} s/epoch", flush=True)
    keras.mixed_precision.set_global_policy("float32")
    result = dict(epochs_timed=args.epochs, rows=rows, provenance=provenance(), command=" ".join(sys.argv))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
