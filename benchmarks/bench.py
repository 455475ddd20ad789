"""Speed benchmark: seconds per training epoch and importance-sampling time on static MNIST, each
also as a fraction of this machine's float32 matmul throughput, measured in the same run.

    python benchmarks/bench.py [--epochs 3] [--eval-images 10000] [--out benchmarks/results.json]

FLOPs are counted analytically from the dense layers (2 * rows * fan_in * fan_out per matmul;
forward, plus the backward weight and input gradients where they are needed) and the mixture
matmuls. Elementwise work (sigmoids, softplus, Adam) is not counted, so the fractions are a lower
bound on how busy the machine is. Not part of the tests: timings belong here, not in assertions.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import vae_lib  # noqa: F401  (quiet TensorFlow import)
import numpy as np
import tensorflow as tf

from vae_lib.config import make_config
from vae_lib.datasets import load_dataset
from vae_lib.estimators import ImportanceSampler
from vae_lib.experiment import model_for
from vae_lib.provenance import hardware, provenance
from vae_lib.training import Trainer


def matmul_peak(n=4096, repeats=5) -> float:
    """float32 GFLOP/s of a large square matmul (the best of several)."""
    a = tf.random.normal([n, n])
    f = tf.function(lambda a: tf.matmul(a, a))
    f(a).numpy()
    best = min(_time(lambda: f(a).numpy()) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _time(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _dense_layers(fan_in, hidden, layers, activation, heads):
    """(fan_in, fan_out) of an MLP's matmuls; a gated layer is one matmul of twice the width."""
    width = 2 * hidden if activation == "gated" else hidden
    dims, last = [], fan_in
    for _ in range(layers):
        dims.append((last, width))
        last = hidden
    dims.append((last, heads))
    return dims


def train_flops_per_epoch(cfg, n_images, input_dim) -> float:
    encoder = _dense_layers(input_dim, cfg.hidden_units, cfg.num_layers, cfg.activation, 2 * cfg.latent_dim)
    decoder = _dense_layers(cfg.latent_dim, cfg.hidden_units, cfg.num_layers, cfg.activation, input_dim)

    def passes(dims, rows, input_needs_grad):
        # forward + weight gradient for every layer, + input gradient where the input needs one
        return sum(2 * rows * a * b * (3 if (i > 0 or input_needs_grad) else 2) for i, (a, b) in enumerate(dims))

    steps = n_images / cfg.batch_size
    per_step = passes(encoder, cfg.batch_size, False) + passes(decoder, cfg.batch_size, True)
    if cfg.prior in ("vampprior", "vampprior_data", "mog"):
        per_step += 3 * 2 * 2 * cfg.batch_size * cfg.latent_dim * cfg.components  # mixture matmuls
    if cfg.prior == "vampprior" or (cfg.prior == "vampprior_data" and cfg.trainable_pseudo_inputs):
        per_step += passes(encoder, cfg.components, True)
    elif cfg.prior == "vampprior_data":
        per_step += passes(encoder, cfg.components, False)
    return steps * per_step


def eval_flops(cfg, n_images, input_dim, samples) -> float:
    decoder = _dense_layers(cfg.latent_dim, cfg.hidden_units, cfg.num_layers, cfg.activation, input_dim)
    per_row = sum(2 * a * b for a, b in decoder)
    if cfg.prior != "standard":
        per_row += 2 * 2 * cfg.latent_dim * cfg.components
    return n_images * samples * per_row


def bench_training(cfg, dataset, epochs) -> dict:
    model = model_for(cfg, dataset)
    trainer = Trainer(model, cfg, progress=False)
    data = tf.constant(dataset.train)
    trainer.train_epoch(data, 0, 1.0)  # compiles (and warms up) the epoch's steps
    seconds = [_time(lambda e=e: trainer.train_epoch(data, e, 1.0)) for e in range(1, epochs + 1)]
    flops = train_flops_per_epoch(cfg, len(dataset.train), dataset.input_dim)
    median = statistics.median(seconds)
    return dict(seconds_per_epoch=median, all_seconds=seconds, gflop_per_epoch=flops / 1e9,
                gflops=flops / median / 1e9)


def bench_eval(cfg, dataset, samples, n_images) -> dict:
    model = model_for(cfg, dataset)
    images = dataset.test[:n_images]
    sampler = ImportanceSampler(model, samples)
    sampler(images[:sampler.images_per_pass])  # compile
    seconds = _time(lambda: sampler(images))
    flops = eval_flops(cfg, len(images), dataset.input_dim, samples)
    return dict(seconds=seconds, images=len(images), samples=samples, gflops=flops / seconds / 1e9)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per configuration")
    parser.add_argument("--eval-images", type=int, default=10_000)
    parser.add_argument("--data-dir")
    parser.add_argument("--only", choices=["train", "eval"], help="run one half only")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    args = parser.parse_args(argv)

    dataset = load_dataset("static_mnist", args.data_dir)
    peak = matmul_peak()
    print(f"float32 matmul peak: {peak:.0f} GFLOP/s on {hardware()['cpu']} x{hardware()['cpu_count']}",
          flush=True)
    rows = []

    def record(kind, label, result, fraction_of):
        result.update(kind=kind, label=label, fraction_of_peak=result["gflops"] / fraction_of)
        rows.append(result)
        seconds = result.get("seconds_per_epoch", result.get("seconds"))
        print(f"{kind:6s} {label:38s} {seconds:8.2f} s  {result['gflops']:6.0f} GFLOP/s "
              f"{100 * result['fraction_of_peak']:5.1f}% of peak", flush=True)

    if args.only in (None, "train"):
        for activation in ("gated", "relu"):
            for prior in ("standard", "vampprior", "vampprior_data", "mog"):
                cfg = make_config("static_mnist", prior, "paper", activation=activation)
                label = f"{prior} {activation}" if prior == "standard" else f"{prior} K=500 {activation}"
                record("train", label, bench_training(cfg, dataset, args.epochs), peak)
        for k in (100, 1000):
            cfg = make_config("static_mnist", "vampprior", "paper", components=k)
            record("train", f"vampprior K={k} gated", bench_training(cfg, dataset, args.epochs), peak)
    if args.only in (None, "eval"):
        for samples in (500, 5000):
            cfg = make_config("static_mnist", "vampprior", "paper")
            record("eval", f"test LL S={samples}, {args.eval_images} images, vampprior gated",
                   bench_eval(cfg, dataset, samples, args.eval_images), peak)

    by_label = {r["label"]: r for r in rows}
    if {"vampprior K=1000 gated", "vampprior K=500 gated"} <= set(by_label):
        ratio = by_label["vampprior K=1000 gated"]["seconds_per_epoch"] / by_label["vampprior K=500 gated"]["seconds_per_epoch"]
        print(f"time(K=1000) / time(K=500) = {ratio:.2f}")
    result = dict(matmul_peak_gflops=peak, epochs_timed=args.epochs, rows=rows, provenance=provenance(),
                  command=" ".join(sys.argv))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    Path(args.out).with_suffix(".md").write_text(markdown_table(result))
    print(f"wrote {args.out} and its table {Path(args.out).with_suffix('.md')}")


def markdown_table(result) -> str:
    """The results as a Markdown table (for the README), with the machine and commit."""
    prov = result["provenance"]
    git = prov.get("git") or {}
    commit = (git.get("commit") or "unknown")[:10] + (" (modified tree)" if git.get("modified") else "")
    hw = prov["hardware"]
    gpus = ", ".join(map(str, hw.get("gpus") or [])) or "no GPU"
    lines = [f"Machine: {hw['cpu']}, {hw['cpu_count']} cores, {gpus}; "
             f"float32 matmul peak measured in the same run: {result['matmul_peak_gflops']:.0f} GFLOP/s; "
             f"TensorFlow {prov['packages'].get('tensorflow', '?')}; commit {commit}; "
             f"training: median of {result['epochs_timed']} epochs on the 50000 static-MNIST images, "
             f"batch 100.", "",
             "| what | time | GFLOP/s | share of peak |", "|---|---:|---:|---:|"]
    for row in result["rows"]:
        time_ = (f"{row['seconds_per_epoch']:.2f} s/epoch" if row["kind"] == "train"
                 else f"{row['seconds']:.0f} s")
        lines.append(f"| {row['kind']}: {row['label']} | {time_} | {row['gflops']:.0f} | "
                     f"{100 * row['fraction_of_peak']:.0f}% |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
