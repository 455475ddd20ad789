"""Peer benchmark: pythae's VAMP (PyTorch) on static MNIST, timed the way benchmarks/bench.py times
the project: seconds per training epoch and the time of the S=5000 importance-sampled test
log-likelihood.

Runs only in a separate virtual environment with torch and pythae (see README.md beside this file),
never in the project's: it imports neither TensorFlow nor vae_lib.

    /work/peer-venv/bin/python benchmarks/peers/pythae_peer.py [--epochs 3] [--eval-images 10000]

Model: pythae.models.VAMP (VAMPConfig: latent_dim=40, number_components=500, input_dim=(1, 28, 28),
reconstruction_loss="bce") with custom encoder/decoder matching the project's networks:
encoder x(784) -> gated 300 -> gated 300 -> (mean 40, log-variance 40 hardtanh-clipped to [-6, 2]);
decoder z(40) -> gated 300 -> gated 300 -> 784 Bernoulli probabilities (sigmoid; pythae's "bce" loss
applies binary_cross_entropy to probabilities, not logits). A gated layer is
h = (W x + b) * sigmoid(W' x + b'), computed as one matmul of twice the width, as the project does.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pythae.models import VAMP, VAMPConfig
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn import BaseDecoder, BaseEncoder

REPO = Path(__file__).resolve().parents[2]
LINE_BYTES = 1568  # 784 one-character values, 783 single spaces, one newline
SPLITS = {"train": 50_000, "valid": 10_000, "test": 10_000}
LATENT, HIDDEN, COMPONENTS, PIXELS = 40, 300, 500, 784
LOGVAR_RANGE = (-6.0, 2.0)


# ----------------------------------------------------------------------------------------- data
def load_amat(path: Path, expected_rows: int | None = None) -> np.ndarray:
    """A binarized-MNIST .amat file as a (rows, 784) float32 array of 0/1."""
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raw += b"\n"
    if len(raw) % LINE_BYTES:
        raise ValueError(f"{path}: {len(raw)} bytes is not a whole number of {LINE_BYTES}-byte lines "
                         "(expected 784 single-character values separated by single spaces)")
    table = np.frombuffer(raw, dtype=np.uint8).reshape(-1, LINE_BYTES)
    if not ((table[:, 1:-1:2] == ord(" ")).all() and (table[:, -1] == ord("\n")).all()):
        raise ValueError(f"{path}: unexpected separators (not single spaces / newline)")
    values = table[:, 0::2] - ord("0")
    if values.max(initial=0) > 1:
        raise ValueError(f"{path}: values other than 0 and 1")
    if expected_rows is not None and len(values) != expected_rows:
        raise ValueError(f"{path}: {len(values)} lines, expected {expected_rows}")
    return values.astype(np.float32)


def default_data_dir() -> Path:
    return Path(os.environ.get("VAE_DATA_DIR") or REPO.parent / "shared" / "data")


# -------------------------------------------------------------------------------------- networks
class GatedDense(nn.Module):
    """h = (W x + b) * sigmoid(W' x + b'), both halves in one matmul of twice the width."""

    def __init__(self, fan_in: int, units: int):
        super().__init__()
        self.linear = nn.Linear(fan_in, 2 * units)
        nn.init.xavier_uniform_(self.linear.weight[:units])  # glorot per half, as two layers would be
        nn.init.xavier_uniform_(self.linear.weight[units:])

    def forward(self, x):
        h, gate = self.linear(x).chunk(2, dim=-1)
        return h * torch.sigmoid(gate)


class GatedEncoder(BaseEncoder):
    """x -> gated 300 -> gated 300 -> (mean, log-variance clipped to [-6, 2])."""

    def __init__(self):
        BaseEncoder.__init__(self)
        self.body = nn.Sequential(GatedDense(PIXELS, HIDDEN), GatedDense(HIDDEN, HIDDEN))
        self.mean = nn.Linear(HIDDEN, LATENT)
        self.logvar = nn.Linear(HIDDEN, LATENT)
        for layer in (self.mean, self.logvar):
            nn.init.xavier_uniform_(layer.weight)

    def forward(self, x):
        h = self.body(x.reshape(x.shape[0], -1))
        return ModelOutput(embedding=self.mean(h),
                           log_covariance=F.hardtanh(self.logvar(h), *LOGVAR_RANGE))


class GatedDecoder(BaseDecoder):
    """z -> gated 300 -> gated 300 -> 784 Bernoulli probabilities, shaped (batch, 1, 28, 28)."""

    def __init__(self):
        BaseDecoder.__init__(self)
        self.body = nn.Sequential(GatedDense(LATENT, HIDDEN), GatedDense(HIDDEN, HIDDEN))
        self.logits = nn.Linear(HIDDEN, PIXELS)
        nn.init.xavier_uniform_(self.logits.weight)

    def forward(self, z):
        # pythae's VAMP "bce" loss and get_nll call F.binary_cross_entropy on the reconstruction,
        # so it must be probabilities in [0, 1] (pythae's convention), not logits.
        probs = torch.sigmoid(self.logits(self.body(z)))
        return ModelOutput(reconstruction=probs.reshape(z.shape[0], 1, 28, 28))


def build_model() -> VAMP:
    config = VAMPConfig(input_dim=(1, 28, 28), latent_dim=LATENT, number_components=COMPONENTS,
                        reconstruction_loss="bce", linear_scheduling_steps=0)
    return VAMP(config, encoder=GatedEncoder(), decoder=GatedDecoder())


# -------------------------------------------------------------------------------------- training
def train_loop(model, train, batch_size, lr, epochs, warmup, seed) -> list[float]:
    """A plain PyTorch loop around VAMP.forward (which returns the loss); returns timed epochs' s."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    model.train()

    def one_epoch(epoch):
        order = torch.randperm(len(train), generator=generator)
        for start in range(0, len(train), batch_size):
            batch = train[order[start:start + batch_size]]
            loss = model({"data": batch}, epoch=epoch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return loss.item()

    seconds = []
    for epoch in range(1, warmup + epochs + 1):
        started = time.perf_counter()
        last_loss = one_epoch(epoch)
        elapsed = time.perf_counter() - started
        timed = epoch > warmup
        if timed:
            seconds.append(elapsed)
        print(f"epoch {epoch} ({'timed' if timed else 'warm-up'}): {elapsed:.2f} s, "
              f"last batch loss {last_loss:.2f}", file=sys.stderr, flush=True)
    return seconds


def train_pythae(model, train, batch_size, lr, epochs, warmup, seed) -> list[float]:
    """pythae's own BaseTrainer (its DataLoader, progress bars, best-model deepcopy each epoch);
    per-epoch time from on_epoch_begin to on_epoch_end. Checkpoints are off; the final model it
    always saves goes to a temporary folder that is deleted."""
    from pythae.data.datasets import BaseDataset
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback

    class EpochTimer(TrainingCallback):
        def __init__(self):
            self.seconds, self.started = [], None

        def on_epoch_begin(self, training_config, **kwargs):
            self.started = time.perf_counter()

        def on_epoch_end(self, training_config, **kwargs):
            self.seconds.append(time.perf_counter() - self.started)

    timer = EpochTimer()
    with tempfile.TemporaryDirectory(prefix="pythae_peer_") as out_dir:
        config = BaseTrainerConfig(output_dir=out_dir, per_device_train_batch_size=batch_size,
                                   learning_rate=lr, num_epochs=warmup + epochs, optimizer_cls="Adam",
                                   steps_saving=None, seed=seed, no_cuda=True)
        dataset = BaseDataset(train, torch.zeros(len(train)))
        trainer = BaseTrainer(model, train_dataset=dataset, training_config=config, callbacks=[timer])
        with contextlib.redirect_stdout(sys.stderr):
            trainer.train()
    for epoch, s in enumerate(timer.seconds, start=1):
        print(f"epoch {epoch} ({'timed' if epoch > warmup else 'warm-up'}): {s:.2f} s",
              file=sys.stderr, flush=True)
    return timer.seconds[warmup:]


# ------------------------------------------------------------------------------------ evaluation
def time_get_nll(model, test, samples, batch_size):
    """Times VAMP.get_nll (under torch.no_grad(); pythae does not disable autograd itself)."""
    model.eval()
    with torch.no_grad(), contextlib.redirect_stdout(sys.stderr):  # get_nll prints progress
        model.get_nll(test[:1], n_samples=samples, batch_size=batch_size)  # warm-up, not timed
        started = time.perf_counter()
        value = model.get_nll(test, n_samples=samples, batch_size=batch_size)
        seconds = time.perf_counter() - started
    return float(value), seconds


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# -------------------------------------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding static_mnist/ (default: $VAE_DATA_DIR, else "
                             "../shared/data relative to the repository root)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--max-train", type=int, default=None,
                        help="train on the first N training images only (for quick tests)")
    parser.add_argument("--eval-images", type=int, default=10_000,
                        help="test images for get_nll; fewer than 10000 are extrapolated linearly")
    parser.add_argument("--samples", type=int, default=5000, help="importance samples per image")
    parser.add_argument("--nll-batch-size", type=int, default=100,
                        help="get_nll's batch_size, samples per pass (must divide --samples); default "
                             "pythae's own, 100. Each pass re-encodes the 500 pseudo-inputs and the "
                             "batch_size copies of the image; 5000 does one pass per image (over 1 GB of "
                             "temporaries) and measured about the same CPU time here")
    parser.add_argument("--trainer", choices=["loop", "pythae"], default="loop",
                        help="loop: plain PyTorch loop around VAMP.forward; pythae: pythae's BaseTrainer")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--only", choices=["train", "eval"], help="run one half only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "peers" / "pythae_results.json")
    args = parser.parse_args(argv)
    if args.samples % args.nll_batch_size or args.nll_batch_size > args.samples:
        parser.error("--nll-batch-size must divide --samples (get_nll draws "
                     "(samples // batch_size) * batch_size samples, or batch_size if batch_size >= samples)")

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data_dir = (args.data_dir or default_data_dir()) / "static_mnist"

    started = time.perf_counter()
    train = load_amat(data_dir / "binarized_mnist_train.amat", SPLITS["train"])
    test = load_amat(data_dir / "binarized_mnist_test.amat", SPLITS["test"])
    load_seconds = time.perf_counter() - started
    if args.max_train:
        train = train[:args.max_train]
    train = torch.from_numpy(train).reshape(-1, 1, 28, 28)
    test = torch.from_numpy(test[:args.eval_images]).reshape(-1, 1, 28, 28)
    print(f"loaded static MNIST from {data_dir} in {load_seconds:.2f} s; torch threads "
          f"{torch.get_num_threads()}", file=sys.stderr, flush=True)

    model = build_model()
    result = dict(
        peer="pythae", model="pythae.models.VAMP",
        pythae_version=version("pythae"), torch_version=torch.__version__,
        threads=torch.get_num_threads(), cpu_model=cpu_model(), cpu_count=os.cpu_count(),
        load_average_at_start=list(os.getloadavg()),
        model_config=dict(latent_dim=LATENT, number_components=COMPONENTS, input_dim=[1, 28, 28],
                          reconstruction_loss="bce", linear_scheduling_steps=0,
                          encoder="784 -> gated 300 -> gated 300 -> (mean 40, logvar 40 hardtanh[-6,2])",
                          decoder="40 -> gated 300 -> gated 300 -> 784 sigmoid probabilities",
                          parameters=sum(p.numel() for p in model.parameters())),
        data_dir=str(data_dir), data_load_seconds=load_seconds,
        command=" ".join([Path(sys.executable).as_posix()] + sys.argv),
    )

    if args.only in (None, "train"):
        runner = train_loop if args.trainer == "loop" else train_pythae
        seconds = runner(model, train, args.batch_size, args.lr, args.epochs, args.warmup_epochs, args.seed)
        result.update(
            training=("plain PyTorch loop: shuffled minibatches indexed from an in-memory tensor, "
                      "loss = VAMP.forward({'data': batch}).loss, Adam step"
                      if args.trainer == "loop" else
                      "pythae BaseTrainer (DataLoader, progress bars, best-model deepcopy each epoch; "
                      "no checkpoints; final model saved to a deleted temporary folder)"),
            train_images=len(train), batch_size=args.batch_size, learning_rate=args.lr,
            optimizer="Adam", warmup_epochs=args.warmup_epochs, epochs_timed=len(seconds),
            seconds_per_epoch=dict(all=seconds, median=statistics.median(seconds) if seconds else None),
        )
        if len(train) != SPLITS["train"]:
            result["seconds_per_epoch"]["note"] = (f"trained on {len(train)} images only (--max-train); "
                                                   "not a full 50000-image epoch")

    if args.only in (None, "eval"):
        value, seconds = time_get_nll(model, test, args.samples, args.nll_batch_size)
        extrapolated = len(test) != 10_000
        result.update(
            eval_images=len(test), eval_samples=args.samples, eval_nll_batch_size=args.nll_batch_size,
            eval_model=("the model after the timed training above" if args.only is None
                        else "an untrained model (initial weights)"),
            eval_seconds=seconds,
            eval_seconds_per_10000_images=seconds * 10_000 / len(test),
            eval_seconds_per_10000_images_extrapolated=extrapolated,
            eval_how="VAMP.get_nll(test, n_samples, batch_size) under torch.no_grad(), model.eval(); "
                     "one untimed warm-up image first",
            get_nll_returned=value,
            mean_test_nll=-value,
            nll_sign_convention=("mean_test_nll is positive nats (-log p(x), lower is better). pythae's "
                                 "get_nll despite its name returns the mean estimated LOG-likelihood "
                                 "(mean of logsumexp(log p(x|z) + log p(z) - log q(z|x)) - log S, a "
                                 "negative number), stored as get_nll_returned"),
        )
        if extrapolated:
            result["eval_note"] = (f"timed on {len(test)} test images; eval_seconds_per_10000_images is "
                                   "extrapolated linearly to 10000")

    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
