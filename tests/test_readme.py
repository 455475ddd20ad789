"""The README's code runs as written: its "Use the VampPrior in your own model" block, on a small
budget (each change of budget below must find its text in the block, so the block cannot drift
away from what is run)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SECTION = "## Use the VampPrior in your own model"
SMALL_BUDGET = {  # text in the block -> what runs here instead
    "epochs=2000": "epochs=2",
    "num_components=500)": "num_components=20)",
    "KLWarmup(100)": "KLWarmup(2)",
    "PaperEarlyStopping(patience=50, warmup_epochs=100)": "PaperEarlyStopping(patience=1, warmup_epochs=2)",
    "num_samples=5000": "num_samples=10",
    'data = vae_lib.load_dataset("static_mnist")':
        'data = vae_lib.load_dataset("static_mnist"); data.train, data.test = data.train[:2000], data.test[:200]',
}


def readme_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index(SECTION):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_code_block_runs_as_written(tmp_path, data_dir):
    code = readme_block()
    for old, new in SMALL_BUDGET.items():
        assert code.count(old) == 1, f"the README block no longer says {old!r}: update SMALL_BUDGET"
        code = code.replace(old, new)
    code += ("\nimport numpy as np\nx = data.test[:20]\nsame_numbers = np.array_equal("
             "vae_lib.log_likelihood(model, x, num_samples=10), vae_lib.log_likelihood(same, x, num_samples=10))\n"
             "print('loaded identical:', same_numbers, type(same).__name__, type(same.prior).__name__)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=900, env=dict(os.environ, VAE_DATA_DIR=str(data_dir)))
    assert done.returncode == 0, done.stderr[-3000:]
    *_, mean, last = done.stdout.strip().splitlines()
    assert -300 < float(mean) < -50, mean  # a mean test log-likelihood in nats of a barely trained model
    assert last == "loaded identical: True VAE VampPrior"
    assert (tmp_path / "vamp.keras").is_file()
