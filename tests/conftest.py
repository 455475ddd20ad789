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
