"""The project's promises about itself: pyproject, environment.yml, README and CI agree."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import run_and_see_if_tensorflow_loads

REPO = Path(__file__).resolve().parent.parent
tomllib = pytest.importorskip("tomllib")


def _pyproject():
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _names(requirements):
    return {re.split(r"[<>=!\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_design_card_packages_are_dependencies():
    project = _pyproject()["project"]
    runtime, dev = _names(project["dependencies"]), _names(project["optional-dependencies"]["dev"])
    assert {"tensorflow", "numpy", "scipy", "matplotlib", "jupytext", "papermill", "pooch"} <= runtime
    assert {"pytest", "nbval", "jupyterlab"} <= dev
    assert project["scripts"]["vampprior"] == "vae_lib.pipeline.cli:main"


def test_environment_yml_installs_the_package_with_dev_extras():
    """Promise: conda users get the same dependencies (environment.yml installs this package with
    its dev and dask extras, on a Python that pyproject allows)."""
    text = (REPO / "environment.yml").read_text()
    extras = re.search(r"-\s+-e\s+\"?\.\[([\w,]+)\]\"?", text)
    assert extras and {"dev", "dask"} <= set(extras.group(1).split(",")), "install .[dev,dask]"
    extras_defined = _pyproject()["project"]["optional-dependencies"]
    assert set(extras_defined) == {"dev", "dask", "jax"}
    assert _names(extras_defined["jax"]) <= _names(extras_defined["dev"])  # the dev extra has JAX too
    python = re.search(r"python\s*=\s*(3\.\d+)", text).group(1)
    minimum = re.search(r">=\s*(3\.\d+)", _pyproject()["project"]["requires-python"]).group(1)
    assert tuple(map(int, python.split("."))) >= tuple(map(int, minimum.split(".")))


def test_readme_names_the_two_commands_and_ci_runs_the_test_command():
    readme = (REPO / "README.md").read_text()
    assert "vampprior report" in readme and re.search(r"^pytest\b", readme, re.M)
    ci = (REPO / ".ci" / "run").read_text()
    makefile = (REPO / "Makefile").read_text()
    assert "make test" in ci and re.search(r"^test:\n\t\$\(PYTHON\) -m pytest\s*$", makefile, re.M)


def test_command_line_help_lists_both_commands_without_loading_tensorflow():
    """`vampprior --help` answers at once: it lists both commands and loads no TensorFlow."""
    printed, loaded = run_and_see_if_tensorflow_loads(
        "from vae_lib.pipeline.cli import main\ntry:\n    main(['--help'])\n"
        "except SystemExit as done:\n    assert done.code == 0")
    assert "train" in printed and "report" in printed
    assert not loaded


def test_provenance_says_modified_for_code_changes_only_and_nothing_outside_a_checkout(tmp_path):
    """A real git checkout holding a copy of provenance.py: a changed record or report (what the
    jobs write) leaves "modified" False, a changed module makes it True; without pyproject.toml
    beside it (an installed copy) commit and modified are None."""
    import importlib.util
    import shutil
    import subprocess

    import vae_lib

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    def state():
        spec = importlib.util.spec_from_file_location("provenance_copy", copy)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.git_state()

    copy = tmp_path / "vae_lib" / "pipeline" / "provenance.py"
    copy.parent.mkdir(parents=True)
    shutil.copy(Path(vae_lib.__file__).parent / "pipeline" / "provenance.py", copy)
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "results.csv").write_text("a\n")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    assert state()["modified"] is False and len(state()["commit"]) == 40
    (tmp_path / "report" / "results.csv").write_text("b\n")
    assert state()["modified"] is False, "a job's own output is not a code change"
    with open(copy, "a") as f:
        f.write("# changed\n")
    assert state()["modified"] is True
    (tmp_path / "pyproject.toml").unlink()
    assert state() == {"commit": None, "modified": None}
