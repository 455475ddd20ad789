"""Shared fixtures. The datasets are read from $VAE_DATA_DIR, else from ../shared/data beside the
repository; without either, data tests are skipped locally and fail under CI (CI=true)."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def _data_dir() -> Path | None:
    for candidate in (os.environ.get("VAE_DATA_DIR"), REPO.parent / "shared" / "data"):
        if candidate and (Path(candidate) / "static_mnist").is_dir():
            return Path(candidate).resolve()
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    found = _data_dir()
    if found is None:
        message = "no dataset folder: set VAE_DATA_DIR (see README, 'Data')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def datasets(data_dir):
    """Each dataset loaded once per test session: name -> Dataset."""
    from vae_lib.datasets import DATASETS, load_dataset

    return {name: load_dataset(name, data_dir) for name in DATASETS}


@pytest.fixture
def broken_frey_data_dir(data_dir, tmp_path):
    """A data folder with Caltech 101 as it is and a Frey Faces file of the right name and size
    whose last byte is altered (its sha256 no longer matches)."""
    broken = tmp_path / "broken_data"
    for sub in ("caltech101_silhouettes", "frey_faces"):
        (broken / sub).mkdir(parents=True)
    caltech = "caltech101_silhouettes/caltech101_silhouettes_28_split1.mat"
    os.symlink(data_dir / caltech, broken / caltech)
    frey = bytearray((data_dir / "frey_faces/frey_rawface.mat").read_bytes())
    frey[-1] ^= 0xFF
    (broken / "frey_faces/frey_rawface.mat").write_bytes(bytes(frey))
    return broken


# The smoke grid the session shares: every dataset with the VampPrior (and the K sweep), and every
# other prior on static MNIST. Each dataset and each prior runs end to end through the main job;
# the full product adds cells, not code paths (test_plans checks that the plan has every cell).
SMOKE_GRID = (["--datasets", "static_mnist", "dynamic_mnist", "fashion_mnist", "caltech101_silhouettes",
               "frey_faces", "--priors", "vampprior"],
              ["--datasets", "static_mnist", "--priors", "standard", "vampprior_data", "mog", "--no-k-sweep"])


@pytest.fixture(scope="session")
def smoke_grid(data_dir, tmp_path_factory):
    """The session's smoke grid (:data:`SMOKE_GRID`: 9 cells with the K sweep), run by the README's
    main command on a local Dask cluster of 2 workers, in two calls into the same folders: (runs,
    report, the second call's completed process, its command). Several tests read it instead of
    running their own grid."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("smoke_grid")
    runs, report = root / "runs", root / "report"
    env = dict(os.environ, VAE_DATA_DIR=str(data_dir))
    for part in SMOKE_GRID:
        command = [sys.executable, "-m", "vae_lib", "report", "--profile", "smoke", "--workers", "2",
                   "--runs-dir", str(runs), "--report-dir", str(report), *part]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
        if done.returncode:
            break
    return runs, report, done, command
