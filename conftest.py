"""Root conftest: settings for every test, the notebook (nbval) ones included.

Notebook kernels inherit this environment: their runs and reports go to a temporary folder, never
to the committed report/; the data come from $VAE_DATA_DIR, else ../shared/data beside the repo.
"""
import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The theory and own-model notebooks are committed executed at budgets of minutes; nbval would
# re-run them at those budgets. tests/test_notebooks.py runs them by papermill at small budgets
# instead and checks what they print.
collect_ignore = ["notebooks/theory.ipynb", "notebooks/own_model.ipynb"]


def pytest_configure(config):
    scratch = Path(tempfile.mkdtemp(prefix="vae_lib_tests_"))
    os.environ["VAE_RUNS_DIR"] = str(scratch / "runs")
    os.environ["VAE_REPORT_DIR"] = str(scratch / "report")
    shared = Path(__file__).resolve().parent.parent / "shared" / "data"
    if "VAE_DATA_DIR" not in os.environ and shared.is_dir():
        os.environ["VAE_DATA_DIR"] = str(shared)


# nbval executes the notebooks in this order: the evaluation notebook evaluates what the training
# notebook trained (the same parameters name the same run directory).
NOTEBOOK_ORDER = ("training", "evaluation", "report")


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the groups
def pytest_collection_modifyitems(session, config, items):
    """Notebooks last, in NOTEBOOK_ORDER. The default test command runs 2 pytest-xdist workers
    (--dist loadgroup): what must share a process shares an xdist group, so one worker runs it in
    order: each notebook's cells (nbval items share one kernel; the training and evaluation
    notebooks also share their run directory), and the tests that read the session's smoke grid
    (made once)."""
    def rank(item):
        path = Path(str(item.fspath))
        if path.suffix != ".ipynb":
            return (0, 0)
        return (1, NOTEBOOK_ORDER.index(path.stem) if path.stem in NOTEBOOK_ORDER else len(NOTEBOOK_ORDER))

    items.sort(key=rank)  # stable: each notebook's cells keep their order
    for item in items:
        path = Path(str(item.fspath))
        if path.suffix == ".ipynb":
            group = "training and evaluation" if path.stem in ("training", "evaluation") else path.stem
            item.add_marker(pytest.mark.xdist_group(f"notebook {group}"))
        elif "smoke_grid" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("smoke_grid"))
