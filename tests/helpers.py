"""Helpers shared by the test modules that drive real processes (tests/ is on sys.path under
pytest's default import mode)."""
from __future__ import annotations

import contextlib
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path


def env_with_data(data_dir) -> dict:
    """This process's environment with VAE_DATA_DIR pointing at ``data_dir``."""
    return dict(os.environ, VAE_DATA_DIR=str(data_dir))


def run_and_see_if_tensorflow_loads(code: str) -> tuple[str, bool]:
    """Run ``code`` in a fresh interpreter: (what it printed, whether TensorFlow got loaded)."""
    probe = code + "\nimport sys\nprint('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    *printed, loaded = done.stdout.splitlines()
    return "\n".join(printed), loaded == "True"


def history_without_timings(run_dir: Path) -> list[dict]:
    """history.csv's rows without their wall-clock column (the rest must replay exactly)."""
    with open(Path(run_dir) / "history.csv") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def can_mount_tmpfs() -> bool:
    """A private mount namespace with a small tmpfs: root with unshare(1), as in CI here."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


@contextlib.contextmanager
def another_process_holding(run_dir: Path, lock: str = ".lock"):
    """While inside, a separate process holds ``run_dir``'s ``lock`` (".lock": the process training
    there; ".runner.lock": a main job running the cell)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(900)",
         str(Path(run_dir) / lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.kill()
        holder.wait()


def paper_model(model: str, prior: str, input_dim: int, likelihood: str = "bernoulli", *,
                hidden_units: int = 32, num_components: int = 10, latent_dim: int = 40, seed: int = 0,
                train_images=None, trainable_pseudo_inputs=None, activation="gated", init="glorot",
                closed_form_kl=True):
    """The paper's MLP VAE or HVAE with the named prior, built from the core's classes as a
    practitioner would (flat inputs of ``input_dim``), weights from ``seed``."""
    import keras

    from vae_lib import likelihoods
    from vae_lib.models import HVAE, VAE
    from vae_lib.networks import GaussianMLP, MLPDecoder, TwoInputGaussian, TwoInputMLPDecoder
    from vae_lib.priors import MixtureOfGaussians, StandardNormal, VampPrior

    keras.utils.set_random_seed(seed)
    lik = likelihoods.get(likelihood)
    mlp = dict(hidden_units=hidden_units, activation=activation, init=init)
    out = dict(outputs=input_dim * lik.params_per_pixel, blocks=lik.params_per_pixel)
    nets = ([GaussianMLP(latent_dim, name="encoder", **mlp), MLPDecoder(name="decoder", **out, **mlp)]
            if model == "vae" else
            [GaussianMLP(latent_dim, name="q_z2", **mlp), TwoInputGaussian(latent_dim, name="q_z1", **mlp),
             GaussianMLP(latent_dim, name="p_z1", **mlp), TwoInputMLPDecoder(name="p_x", **out, **mlp)])
    if prior == "standard":
        p = StandardNormal()
    elif prior == "mog":
        p = MixtureOfGaussians(num_components)
    elif prior == "vampprior":
        p = VampPrior(num_components, trainable=trainable_pseudo_inputs is not False)
    else:
        p = VampPrior.from_data(train_images, num_components, trainable=bool(trainable_pseudo_inputs),
                                seed=seed)
    built = (VAE(*nets, p, lik, closed_form_kl=closed_form_kl, seed=seed) if model == "vae"
             else HVAE(*nets, p, lik, seed=seed))
    built.build((None, input_dim))
    return built


def synthetic_record(root, dataset, prior, seed, log_px=None, failed=False, metrics=None, profile="paper",
                     **settings):
    """A record folder as the runner keeps it: config.json, and metrics.json + test_ll.npz (complete)
    or failure.json (failed), or neither (incomplete); ``metrics``: more of metrics.json."""
    import json

    import numpy as np

    from vae_lib.pipeline.config import make_config
    from vae_lib.pipeline.io import atomic_write_npz
    from vae_lib.pipeline.rundir import run_dir_name

    config = make_config(dataset, prior, profile, seed=seed, **settings)
    folder = root / run_dir_name(config)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    if failed:
        (folder / "failure.json").write_text(json.dumps(dict(error="DataError", message="bad file")))
    elif log_px is not None:
        log_px = np.asarray(log_px, np.float64)
        atomic_write_npz(folder / "test_ll.npz", compressed=True, log_px=log_px, ess=np.ones_like(log_px))
        metrics = {**dict(test_ll=float(log_px.mean()), n_test=len(log_px), provenance={"git": {"commit": "abc"}},
                          test_ll_stderr=float(log_px.std(ddof=1) / np.sqrt(len(log_px)))), **(metrics or {})}
        if dataset == "frey_faces":
            metrics["test_bits_per_dim"] = float(-log_px.mean() / (560 * np.log(2)))
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder
