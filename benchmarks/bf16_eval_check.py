"""How far do bfloat16 matmul inputs move a trained model's importance-sampled test log-likelihood?

For each finished run directory (with its checkpoint), score the first --images test images with
S=--samples importance samples twice, float32 and bfloat16 matmul inputs, with the same seed (the
same draws), and report the change of the mean and per image. The project allows bfloat16 only
where the mean moves by less than 0.01 nats (vae_lib.estimators.BFLOAT16_LIKELIHOODS); this is the
measurement behind that list. The 8-bit likelihood is refused by the sampler, so it is scored here
with the check lifted.

    python benchmarks/bf16_eval_check.py RUN_DIR [RUN_DIR ...] [--samples 1000] [--images 1000]

Writes benchmarks/bf16_eval_check.json. Not part of the tests.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from vae_lib import estimators
from vae_lib.estimators import ImportanceSampler
from vae_lib.pipeline.experiment import use_threads
from vae_lib.pipeline.io import atomic_write_json
from vae_lib.pipeline.provenance import provenance
from vae_lib.pipeline.records import load_run

OUT = Path(__file__).with_name("bf16_eval_check.json")


def check(run_dir, samples: int, images: int, seed: int = 7) -> dict:
    run = load_run(run_dir)
    test = run.dataset.test[:images]
    scores = {mm: ImportanceSampler(run.model, samples, matmul_inputs=mm)(test, seed=seed)
              for mm in ("float32", "bfloat16")}
    diff = scores["bfloat16"] - scores["float32"]
    return dict(run=Path(run_dir).name, dataset=run.config.dataset, likelihood=run.model.likelihood.name,
                samples=samples, images=len(test), float32_mean=float(scores["float32"].mean()),
                bfloat16_mean=float(scores["bfloat16"].mean()), mean_change=float(diff.mean()),
                per_image_sd=float(diff.std()), per_image_max_abs=float(np.abs(diff).max()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    use_threads(args.threads)
    # measure every likelihood, including the ones the sampler refuses
    estimators.BFLOAT16_LIKELIHOODS = ("bernoulli", "discretized_logistic")
    rows = []
    for run_dir in args.run_dirs:
        row = check(run_dir, args.samples, args.images)
        rows.append(row)
        print(f"{row['run']}: {row['images']} images, S={row['samples']}: mean {row['float32_mean']:.4f} "
              f"(float32) -> {row['bfloat16_mean']:.4f} (bfloat16), change {row['mean_change']:+.4f} "
              f"nats; per image sd {row['per_image_sd']:.4f}, max |change| {row['per_image_max_abs']:.4f}")
    command = " ".join(["bf16_eval_check.py", *(sys.argv[1:] if argv is None else argv)])
    atomic_write_json(OUT, dict(rows=rows, provenance=provenance(), command=command))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
