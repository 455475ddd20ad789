"""Where a number came from: package versions, git commit, hardware."""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


# What makes the numbers: "modified" looks at these only, not at the records and reports that the
# jobs themselves write into the checkout.
CODE_PATHS = ("vae_lib", "notebooks", "pyproject.toml")


def git_state() -> dict:
    """The commit of the checkout vae_lib is imported from, and whether its code (CODE_PATHS) differs
    from that commit; None for both when vae_lib is not imported from a checkout (an installed
    copy in site-packages, even one inside a checkout's virtual environment)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        return {"commit": None, "modified": None}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
                               cwd=root, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        return {"commit": commit, "modified": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "modified": None}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpus_visible() -> list[str]:
    """The NVIDIA GPUs this machine shows (``nvidia-smi -L``; what a Colab GPU runtime has), without
    loading TensorFlow; empty where there is none or no driver."""
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line for line in done.stdout.splitlines() if line.startswith("GPU ")] if done.returncode == 0 else []


def hardware() -> dict:
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "gpus": gpus,
            "platform": platform.platform()}


def hardware_label(hw: dict) -> str:
    """Short text for figure captions, e.g. '2-core CPU (Intel Xeon ...)' or '1 GPU'."""
    if hw.get("gpus"):
        return f"{len(hw['gpus'])} GPU"
    return f"{hw.get('cpu_count')}-core CPU ({hw.get('cpu')})"


def provenance() -> dict:
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in ("vae_lib", "tensorflow", "keras", "numpy", "scipy")},
        "git": git_state(),
        "hardware": hardware(),
    }
