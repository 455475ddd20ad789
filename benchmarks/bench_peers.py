"""Ours beside a peer, measured in the same run on the same machine and data: pythae's VampPrior
VAE (PyTorch; benchmarks/peers/pythae_peer.py, run in its own virtual environment) against
vae_lib's, both with gated 2 x 300 networks, latent 40, K=500, batch 100 on static MNIST:
seconds per training epoch, and the S=5000 importance-sampled test log-likelihood's time.

    python benchmarks/bench_peers.py --peer-python .peer-venv/bin/python [--eval-images 200]

`make bench-peers` makes that virtual environment (torch 2.13.0, pythae 0.1.2) and runs this.
"""
from __future__ import annotations

import os
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow loads: quiet its C++ start-up lines

from bench import bench_eval, bench_training, cpu_flags, measure_peak
from vae_lib.pipeline.config import make_config
from vae_lib.datasets import load_dataset
from vae_lib.pipeline.provenance import hardware, provenance

HERE = Path(__file__).resolve().parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", default=str(HERE.parent / ".peer-venv" / "bin" / "python"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--eval-images", type=int, default=200,
                        help="test images for the S=5000 timing (pythae needs about a second an "
                             "image); both are also given per 10000 images, extrapolated")
    parser.add_argument("--data-dir")
    parser.add_argument("--out", default=str(HERE / "peers" / "results.json"))
    args = parser.parse_args(argv)
    if not Path(args.peer_python).is_file():
        sys.exit(f"No peer Python at {args.peer_python}: run `make bench-peers`, which makes it.")

    dataset = load_dataset("static_mnist", args.data_dir)
    peak = measure_peak()
    cfg = make_config("static_mnist", "vampprior", "paper")
    ours_train = bench_training(cfg, dataset, args.epochs)
    ours_eval = bench_eval(cfg, dataset, 5000, args.eval_images, "float32")
    print(f"ours: {ours_train['seconds_per_epoch']:.2f} s/epoch; S=5000 on {args.eval_images} images "
          f"{ours_eval['seconds']:.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pythae.json"
        command = [args.peer_python, str(HERE / "peers" / "pythae_peer.py"), "--epochs", str(args.epochs),
                   "--eval-images", str(args.eval_images), "--out", str(out)]
        if args.data_dir:
            command += ["--data-dir", args.data_dir]
        subprocess.run(command, check=True)
        peer = json.loads(out.read_text())
    rows = [("training, seconds per epoch (50000 images)", ours_train["seconds_per_epoch"],
             peer["seconds_per_epoch"]["median"]),
            (f"test LL, S=5000, seconds per 10000 images (timed on {args.eval_images})",
             ours_eval["seconds_per_10000_images"], peer["eval_seconds_per_10000_images"])]
    hw = hardware()
    lines = [f"Same run, same machine: {hw['cpu']}, {hw['cpu_count']} cores ({', '.join(cpu_flags())}); "
             f"TensorFlow float32 matmul peak {peak['peak_gflops']:.0f} GFLOP/s. Ours: vae_lib at "
             f"commit {(provenance()['git']['commit'] or 'unknown')[:10]}, TensorFlow with XLA. Peer: "
             f"pythae {peer['pythae_version']} (torch {peer['torch_version']}, {peer['threads']} threads; "
             f"{peer['training']}). Both: VampPrior VAE, gated 2 x 300, latent 40, K=500, batch 100, "
             f"static MNIST.", "", "| what | ours | pythae | pythae / ours |", "|---|---:|---:|---:|"]
    lines += [f"| {what} | {a:.2f} | {b:.2f} | {b / a:.1f}x |" for what, a, b in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(json.dumps(dict(peak=peak, ours=dict(train=ours_train, eval=ours_eval),
                                              pythae=peer, provenance=provenance()), indent=2) + "\n")
    Path(args.out).with_suffix(".md").write_text(text)


if __name__ == "__main__":
    main()
