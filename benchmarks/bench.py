"""Speed benchmark: seconds per training epoch and importance-sampling time on static MNIST, each
also as a share of this machine's peak, measured in the same run: the best float32 matmul
throughput TensorFlow reaches here, at 4096^3 and at the model's own shapes, with and without XLA.

    python benchmarks/bench.py [--epochs 5] [--eval-images 10000] [--out benchmarks/results.json]
    python benchmarks/bench.py --only k_sweep [--epochs 2]   # -> benchmarks/k_sweep_timing.json

The K-sweep timing (every K of the paper profile's sweep, one run, one machine) is what the
report's "training time vs K" panel draws: the sweep's own runs are made over days, on machines
whose CPUs differ, beside other runs, so their epoch times compare only roughly.

FLOPs are counted analytically from the dense layers (2 * rows * fan_in * fan_out per matmul;
forward, plus the backward weight and input gradients where they are needed) and the mixture
matmuls; importance sampling is counted on the decoder's matmuls alone. Elementwise work
(sigmoids, softplus, Adam) is not counted, so the shares are a lower bound on how busy the machine
is. Not part of the tests: timings belong here, not in assertions. Stop other work on the machine
while it runs (the numbers are only comparable within one run).
"""
from __future__ import annotations

import os
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads: quiet its C++ start-up lines
import keras
import numpy as np
import tensorflow as tf

from vae_lib.pipeline.config import K_SWEEP_SETTINGS, K_SWEEPS, make_config
from vae_lib.datasets import load_dataset
from vae_lib.estimators import ImportanceSampler
from vae_lib.pipeline.build import build_model
from vae_lib.pipeline.provenance import hardware, provenance
from vae_lib.pipeline.registry import PRIORS
from vae_lib.pipeline.trainer import Trainer

# The model's own matmul shapes: (rows, inner, outer) for a batch (100), a batch with the
# VampPrior's pseudo-inputs (600) and an importance-sampling pass (8192), through the encoder's
# first gated layer (784 -> 2 x 300) and the decoder's last layer (300 -> 784).
MODEL_SHAPES = [(rows, 784, 600) for rows in (100, 600, 8192)] + [(rows, 300, 784) for rows in (100, 600, 8192)]


def _time(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def matmul_throughput(m, k, n, jit, repeats=5) -> float:
    """float32 GFLOP/s of an (m x k) @ (k x n) matmul in TensorFlow (the best of ``repeats``);
    small shapes are repeated inside one call so that call overhead does not count."""
    a, b = tf.random.normal([m, k]), tf.random.normal([k, n])
    reps = max(1, int(4e9 // (2 * m * k * n)))
    f = tf.function(lambda a, b: tf.add_n([tf.matmul(a + float(i), b) for i in range(reps)]),
                    jit_compile=jit, autograph=False)
    f(a, b).numpy()
    best = min(_time(lambda: f(a, b).numpy()) for _ in range(repeats))
    return 2 * m * k * n * reps / best / 1e9


def numpy_throughput(n=4096) -> float:
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    a @ a
    return 2 * n ** 3 / min(_time(lambda: a @ a) for _ in range(3)) / 1e9


def measure_peak() -> dict:
    """TensorFlow's float32 matmul throughput at 4096^3 and at the model's shapes, with and without
    XLA; the best is the peak. numpy's (OpenBLAS, possibly a narrower kernel) for comparison."""
    shapes = [(4096, 4096, 4096)] + MODEL_SHAPES
    table = [dict(shape=f"{m}x{k}x{n}", xla=jit, gflops=matmul_throughput(m, k, n, jit))
             for jit in (False, True) for (m, k, n) in shapes]
    best = max(table, key=lambda r: r["gflops"])
    return dict(peak_gflops=best["gflops"], peak_from=f"{best['shape']}, XLA {'on' if best['xla'] else 'off'}",
                table=table, numpy_4096_gflops=numpy_throughput())


def cpu_flags() -> list[str]:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(f for f in flags if f.startswith(("avx512f", "avx512_bf16", "amx", "avx2", "fma")))
    except OSError:
        pass
    return []


def _dense_layers(fan_in, hidden, layers, activation, heads):
    """(fan_in, fan_out) of an MLP's matmuls; a gated layer is one matmul of twice the width."""
    width = 2 * hidden if activation == "gated" else hidden
    dims, last = [], fan_in
    for _ in range(layers):
        dims.append((last, width))
        last = hidden
    dims.append((last, heads))
    return dims


def _networks(cfg, input_dim):
    """Each network's matmuls as (fan_in, fan_out) lists: 'encoder' is the network the prior's
    pseudo-inputs go through (q(z|x), or q(z2|x) in the HVAE), 'rest' the others, 'decoder' p(x|.).
    (The HVAE's x-branch of q(z1|x, z2) is counted with an input gradient it does not need.)"""
    h, L, act, d = cfg.hidden_units, cfg.num_layers, cfg.activation, cfg.latent_dim
    width = 2 * h if act == "gated" else h
    if cfg.model == "vae":
        decoder = _dense_layers(d, h, L, act, input_dim)  # Bernoulli logits (static MNIST)
        return dict(encoder=_dense_layers(input_dim, h, L, act, 2 * d), rest=decoder, decoder=decoder)
    two_input = [(input_dim, width), (d, width), (2 * h, width), (h, 2 * d)]  # q(z1|x, z2)
    p_x = [(d, width), (d, width), (2 * h, width), (h, input_dim)]
    p_z1 = _dense_layers(d, h, L, act, 2 * d)
    return dict(encoder=_dense_layers(input_dim, h, L, act, 2 * d), rest=two_input + p_z1 + p_x,
                decoder=p_x)


def train_flops_per_epoch(cfg, n_images, input_dim, pseudo_inputs_learned=False) -> float:
    nets = _networks(cfg, input_dim)

    def passes(dims, rows, first_input_needs_grad):
        # forward + weight gradient for every layer, + input gradient where the input needs one
        return sum(2 * rows * a * b * (3 if (i > 0 or first_input_needs_grad) else 2) for i, (a, b) in enumerate(dims))

    steps = n_images / cfg.batch_size
    per_step = passes(nets["encoder"], cfg.batch_size, False) + passes(nets["rest"], cfg.batch_size, True)
    spec = PRIORS[cfg.prior]
    if spec.mixture:
        per_step += 3 * 2 * 2 * cfg.batch_size * cfg.latent_dim * cfg.components  # mixture matmuls
    if spec.has_pseudo_inputs:  # their input needs a gradient only where they are learned
        per_step += passes(nets["encoder"], cfg.components, pseudo_inputs_learned)
    return steps * per_step


def decoder_flops(cfg, n_images, input_dim, samples) -> float:
    """Importance sampling's decoder matmuls alone: 2 x rows x sum(fan_in x fan_out)."""
    return n_images * samples * sum(2 * a * b for a, b in _networks(cfg, input_dim)["decoder"])


def bench_training(cfg, dataset, epochs) -> dict:
    model = build_model(cfg, dataset)
    trainer = Trainer(model, cfg, progress=False)
    data = tf.constant(dataset.train)
    trainer.train_epoch(data, 0, 1.0)  # compiles (and warms up) the epoch's steps
    seconds = [_time(lambda e=e: trainer.train_epoch(data, e, 1.0)) for e in range(1, epochs + 1)]
    learned = bool(model.prior.trainable_weights)  # learned pseudo-inputs need a gradient
    flops = train_flops_per_epoch(cfg, len(dataset.train), dataset.input_dim, learned)
    # Shares of the peak are read at the fastest epoch, the rule the peak itself follows (the best
    # of its repeats): another process can only slow a measurement. The median is kept beside it.
    median, fastest = statistics.median(seconds), min(seconds)
    return dict(seconds_per_epoch=median, fastest_seconds=fastest, all_seconds=seconds,
                gflop_per_epoch=flops / 1e9, gflops=flops / fastest / 1e9,
                gflops_at_median=flops / median / 1e9)


def bench_eval(cfg, dataset, samples, n_images, matmul_inputs) -> dict:
    model = build_model(cfg, dataset)
    images = dataset.test[:n_images]
    sampler = ImportanceSampler(model, samples, matmul_inputs=matmul_inputs)
    sampler(images[:sampler.images_per_pass])  # compile
    seconds = _time(lambda: sampler(images))
    flops = decoder_flops(cfg, len(images), dataset.input_dim, samples)
    return dict(seconds=seconds, images=len(images), samples=samples, matmul_inputs=matmul_inputs,
                gflops=flops / seconds / 1e9, seconds_per_10000_images=seconds * 10_000 / len(images))


CONV_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")


def graph_flops(graph) -> float:
    """The FLOPs of the convolutions and matmuls of a traced graph (its gradients included), from
    their static shapes: 2 x (output or output-gradient elements) x kernel height x width x input
    channels a convolution, 2 x M x K x N a matmul. Elementwise work is not counted."""
    total = 0.0
    for op in graph.get_operations():
        if op.type in CONV_OPS:
            kernel = op.inputs[1] if op.type != "Conv2DBackpropFilter" else op.outputs[0]
            grad = op.outputs[0] if op.type == "Conv2D" else op.inputs[2]
            kh, kw, cin, _ = [int(d) for d in (kernel.shape if op.type != "Conv2DBackpropInput" else op.inputs[1].shape)]
            total += 2.0 * float(np.prod(grad.shape)) * kh * kw * cin
        elif op.type in ("MatMul", "BatchMatMulV2"):
            a, b = op.inputs[0].shape, op.inputs[1].shape
            ta = op.get_attr("transpose_a") if op.type == "MatMul" else op.get_attr("adj_x")
            m, k = (a[-1], a[-2]) if ta else (a[-2], a[-1])
            n = b[-2] if (op.get_attr("transpose_b") if op.type == "MatMul" else op.get_attr("adj_y")) else b[-1]
            total += 2.0 * float(np.prod(a[:-2])) * m * k * n
    return total


def bench_conv_step(model, prior, dataset, steps) -> dict:
    """One training step of the paper's convolutional model (K=500 pseudo-inputs for the VampPrior,
    batch 100), as the pipeline runs it (no XLA), timed over ``steps`` steps after one that
    compiles; its FLOPs from the traced step's convolutions and matmuls."""
    cfg = make_config("static_mnist", prior, "paper", model=model)
    net = build_model(cfg, dataset)
    net.compile(optimizer=keras.optimizers.Adam(5e-4))
    x = tf.constant(dataset.train[:cfg.batch_size])
    step = tf.function(lambda x, t: net.gradient_step(x, net.noise_seed("train", t), 1.0)[0],
                       jit_compile=cfg.jit_compile, autograph=False)
    step(x, tf.constant(0, tf.int64)).numpy()
    flops = graph_flops(step.get_concrete_function(x, tf.constant(0, tf.int64)).graph)
    seconds = [_time(lambda t=t: step(x, tf.constant(t, tf.int64)).numpy()) for t in range(1, steps + 1)]
    median, fastest = statistics.median(seconds), min(seconds)
    return dict(seconds_per_epoch=median, fastest_seconds=fastest, all_seconds=seconds,
                gflop_per_epoch=flops / 1e9, gflops=flops / fastest / 1e9, gflops_at_median=flops / median / 1e9,
                xla=cfg.jit_compile)


def bench_fit(cfg, dataset, epochs) -> dict:
    """Keras' fit on the paper's model (XLA, the epoch's 500 steps in one call:
    steps_per_execution), its epochs timed as the Trainer's are (:func:`bench_training`)."""
    import keras

    model = build_model(cfg, dataset)
    model.compile(optimizer=keras.optimizers.Adam(cfg.learning_rate, epsilon=1e-8), jit_compile=cfg.jit_compile,
                  steps_per_execution=len(dataset.train) // cfg.batch_size)
    seconds = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.started)

    model.fit(dataset.train, batch_size=cfg.batch_size, epochs=epochs + 1, verbose=0, callbacks=[Timer()])
    seconds = seconds[1:]  # the first epoch compiles
    learned = bool(model.prior.trainable_weights)
    flops = train_flops_per_epoch(cfg, len(dataset.train), dataset.input_dim, learned)
    median, fastest = statistics.median(seconds), min(seconds)
    return dict(seconds_per_epoch=median, fastest_seconds=fastest, all_seconds=seconds,
                gflop_per_epoch=flops / 1e9, gflops=flops / fastest / 1e9, gflops_at_median=flops / median / 1e9)


def _shares(row, peak_gflops) -> None:
    row["fraction_of_peak"] = row["gflops"] / peak_gflops
    if "gflops_at_median" in row:
        row["fraction_of_peak_at_median"] = row["gflops_at_median"] / peak_gflops


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per configuration")
    parser.add_argument("--eval-images", type=int, default=10_000)
    parser.add_argument("--data-dir")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per convolutional model")
    parser.add_argument("--only", choices=["train", "fit", "conv", "eval", "k_sweep"],
                        help="run one half only, or time the K sweep's training epochs (written to "
                             "--k-sweep-out)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    parser.add_argument("--k-sweep-out", default=str(Path(__file__).with_name("k_sweep_timing.json")))
    args = parser.parse_args(argv)

    dataset = load_dataset("static_mnist", args.data_dir)
    peak = measure_peak()
    hw = hardware()
    print(f"{hw['cpu']} x{hw['cpu_count']} ({' '.join(cpu_flags())}): peak {peak['peak_gflops']:.0f} "
          f"GFLOP/s ({peak['peak_from']}); numpy 4096^3: {peak['numpy_4096_gflops']:.0f}", flush=True)
    for row in peak["table"]:
        print(f"  matmul {row['shape']:>16s} XLA {'on ' if row['xla'] else 'off'} {row['gflops']:6.0f} GFLOP/s")
    rows = []
    if args.only == "k_sweep":
        return k_sweep_timing(dataset, peak, args)

    def record(kind, label, result):
        result.update(kind=kind, label=label)
        _shares(result, peak["peak_gflops"])
        rows.append(result)
        seconds = result.get("fastest_seconds", result.get("seconds"))
        median = f" (median {result['seconds_per_epoch']:.2f} s: {100 * result['fraction_of_peak_at_median']:.1f}%)" \
            if kind in ("train", "fit", "step") else ""
        print(f"{kind:6s} {label:50s} {seconds:8.2f} s  {result['gflops']:6.0f} GFLOP/s "
              f"{100 * result['fraction_of_peak']:5.1f}% of peak{median}", flush=True)

    if args.only in (None, "train"):
        for prior in PRIORS:
            cfg = make_config("static_mnist", prior, "paper")
            label = f"VAE {prior} K=500" if PRIORS[prior].mixture else f"VAE {prior}"
            record("train", label, bench_training(cfg, dataset, args.epochs))
        for k in (100, 1000):
            cfg = make_config("static_mnist", "vampprior", "paper", components=k)
            record("train", f"VAE vampprior K={k}", bench_training(cfg, dataset, args.epochs))
        cfg = make_config("static_mnist", "vampprior", "paper", model="hvae")
        record("train", "HVAE vampprior K=500", bench_training(cfg, dataset, args.epochs))
    if args.only in (None, "fit"):  # Keras' fit beside the paper-protocol trainer, same model, same run
        for prior in ("vampprior", "standard"):
            cfg = make_config("static_mnist", prior, "paper")
            name = f"VAE {prior}" + (" K=500" if PRIORS[prior].mixture else "")
            if args.only == "fit":
                record("train", name, bench_training(cfg, dataset, args.epochs))
            record("fit", name + ", keras fit", bench_fit(cfg, dataset, args.epochs))
    if args.only in (None, "conv"):
        for model, label in (("convhvae", "convHVAE"), ("pixelhvae", "PixelHVAE")):
            for prior in ("vampprior", "standard"):
                record("step", f"{label} {prior}" + (" K=500" if prior == "vampprior" else "") + ", batch 100",
                       bench_conv_step(model, prior, dataset, args.steps))
    if args.only in (None, "eval"):
        cfg = make_config("static_mnist", "vampprior", "paper")
        for matmul_inputs in ("float32", "bfloat16"):
            record("eval", f"test LL S=5000, {args.eval_images} images, {matmul_inputs} matmul inputs",
                   bench_eval(cfg, dataset, 5000, args.eval_images, matmul_inputs))

    # The peak again at the end: a peak depressed by something else running at the start would
    # flatter every share; the better of the two measurements counts.
    again = measure_peak()
    if again["peak_gflops"] > peak["peak_gflops"]:
        for row in rows:
            _shares(row, again["peak_gflops"])
        again["table_at_start"] = peak["table"]
        peak = again
    print(f"peak (best of the measurements at the start and the end): {peak['peak_gflops']:.0f} GFLOP/s")
    by_label = {r["label"]: r for r in rows}
    ratios = {}
    for name, (a, b) in {"K=1000 / K=500": ("VAE vampprior K=1000", "VAE vampprior K=500"),
                         "HVAE / VAE (VampPrior K=500)": ("HVAE vampprior K=500", "VAE vampprior K=500"),
                         "fit / Trainer (VampPrior K=500)": ("VAE vampprior K=500, keras fit", "VAE vampprior K=500"),
                         "fit / Trainer (standard)": ("VAE standard, keras fit", "VAE standard")}.items():
        if a in by_label and b in by_label:
            ratios[name] = by_label[a]["seconds_per_epoch"] / by_label[b]["seconds_per_epoch"]
            print(f"time per epoch (medians), {name}: {ratios[name]:.2f}")
    result = dict(peak=peak, cpu_flags=cpu_flags(), epochs_timed=args.epochs, rows=rows, ratios=ratios,
                  provenance=provenance(), command=" ".join(sys.argv))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    Path(args.out).with_suffix(".md").write_text(markdown_table(result))
    print(f"wrote {args.out} and its table {Path(args.out).with_suffix('.md')}")


def k_sweep_timing(dataset, peak, args) -> int:
    """Seconds per training epoch of the paper profile's K sweep (VampPrior, static MNIST), every K
    in this one run, with TensorFlow's default threads."""
    rows = []
    for k in K_SWEEPS["paper"]:
        cfg = make_config("static_mnist", "vampprior", "paper", components=k, **K_SWEEP_SETTINGS["paper"])
        row = dict(components=k, **bench_training(cfg, dataset, args.epochs))
        rows.append(row)
        print(f"K={k:5d}: {row['seconds_per_epoch']:6.2f} s/epoch (median of {args.epochs}; fastest "
              f"{row['fastest_seconds']:.2f})", flush=True)
    result = dict(peak_gflops=peak["peak_gflops"], peak_from=peak["peak_from"], cpu_flags=cpu_flags(),
                  threads=tf.config.threading.get_intra_op_parallelism_threads() or hardware()["cpu_count"],
                  epochs_timed=args.epochs, images_per_epoch=len(dataset.train), rows=rows,
                  provenance=provenance(), command=" ".join(sys.argv))
    Path(args.k_sweep_out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.k_sweep_out}")
    return 0


def markdown_table(result) -> str:
    """The results as Markdown (for the README), with the machine, the peak and the commit."""
    prov = result["provenance"]
    git = prov.get("git") or {}
    commit = (git.get("commit") or "unknown")[:10] + (" (modified tree)" if git.get("modified") else "")
    hw, peak = prov["hardware"], result["peak"]
    gpus = ", ".join(map(str, hw.get("gpus") or [])) or "no GPU"
    lines = [f"Machine: {hw['cpu']}, {hw['cpu_count']} cores ({', '.join(result['cpu_flags'])}), {gpus}; "
             f"TensorFlow {prov['packages'].get('tensorflow', '?')}; commit {commit}. "
             f"Peak, measured in the same run: **{peak['peak_gflops']:.0f} GFLOP/s** "
             f"(TensorFlow float32 matmul, best of 4096^3 and the model's shapes with and without "
             f"XLA: {peak['peak_from']}; numpy/OpenBLAS 4096^3: {peak['numpy_4096_gflops']:.0f}). "
             f"Training: {result['epochs_timed']} epochs each on the 50000 static-MNIST images, batch "
             f"100, read at the fastest epoch as the peak is (the best of its repeats), the median "
             f"epoch beside it; importance sampling (one pass over the images) counted on the "
             f"decoder's matmuls alone.", "",
             "| what | time: fastest (median) | GFLOP/s | share of peak: fastest (median) |",
             "|---|---:|---:|---:|"]
    for row in result["rows"]:
        if row["kind"] in ("train", "fit", "step"):
            unit = "step" if row["kind"] == "step" else "epoch"
            time_ = f"{row['fastest_seconds']:.2f} s/{unit} ({row['seconds_per_epoch']:.2f})"
            share = f"{100 * row['fraction_of_peak']:.1f}% ({100 * row['fraction_of_peak_at_median']:.1f}%)"
        else:
            time_, share = f"{row['seconds']:.0f} s", f"{100 * row['fraction_of_peak']:.1f}%"
        lines.append(f"| {row['kind']}: {row['label']} | {time_} | {row['gflops']:.0f} | {share} |")
    lines += [""] + [f"Time per epoch (medians), {name}: {value:.2f}." for name, value in result["ratios"].items()]
    lines += ["", "Matmul throughput (GFLOP/s) behind the peak:", "",
              "| shape (rows x inner x outer) | XLA off | XLA on |", "|---|---:|---:|"]
    shapes = list(dict.fromkeys(r["shape"] for r in peak["table"]))
    for shape in shapes:
        by = {r["xla"]: r["gflops"] for r in peak["table"] if r["shape"] == shape}
        lines.append(f"| {shape} | {by.get(False, 0):.0f} | {by.get(True, 0):.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
