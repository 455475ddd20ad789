"""The notebooks as users meet them: jupytext pairs in sync, papermill parameters, and the runner
producing an HTML report from real runs (smoke profile). nbval re-executes the notebooks
themselves (`pytest --nbval-lax notebooks/`, part of the default test command)."""
from __future__ import annotations

import ast
import csv
import os
import re
import subprocess
from pathlib import Path

import jupytext
import nbformat
import pytest

from helpers import run_and_see_if_tensorflow_loads

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted((REPO / "notebooks").glob("*.py"))


def cell_summary(notebook):
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", []))) for c in notebook.cells]


def pair_differences(py_path: Path, ipynb_path: Path) -> list[str]:
    """Cells that differ between a .py source and its paired .ipynb (empty when in sync)."""
    ours, theirs = cell_summary(jupytext.read(py_path)), cell_summary(nbformat.read(ipynb_path, 4))
    diffs = [f"cell {i}: {a[1][:60]!r} != {b[1][:60]!r}" for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    if len(ours) != len(theirs):
        diffs.append(f"{len(ours)} cells in {py_path.name}, {len(theirs)} in {ipynb_path.name}")
    return diffs


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_pair_is_in_sync(source):
    ipynb = source.with_suffix(".ipynb")
    assert ipynb.is_file(), f"{source.name} has no paired {ipynb.name}: run `make sync`"
    assert pair_differences(source, ipynb) == [], f"{source.name} and {ipynb.name} differ: run `make sync`"


def test_out_of_sync_pair_is_detected(tmp_path):
    """The check above can fail: edit a copy of a .py and it reports the difference."""
    source = REPO / "notebooks" / "training.py"
    edited = tmp_path / "training.py"
    edited.write_text(source.read_text().replace('progress = True', 'progress = False', 1))
    assert pair_differences(edited, source.with_suffix(".ipynb"))


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_one_parameters_cell_and_quiet_tensorflow(source):
    """One cell tagged parameters; TensorFlow's C++ start-up lines never reach a notebook: its
    first code cell sets TF_CPP_MIN_LOG_LEVEL, or its imports load no TensorFlow (the report
    notebook: its kernel starts seconds sooner). Only the import statements are checked; vae_lib
    sets the variable on import anyway, so a call that loads TensorFlow later stays quiet."""
    notebook = jupytext.read(source)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    if "TF_CPP_MIN_LOG_LEVEL" in code[0]:
        return
    imports = [ast.unparse(node) for cell in code for node in ast.parse(cell).body
               if isinstance(node, (ast.Import, ast.ImportFrom))]
    _, loaded = run_and_see_if_tensorflow_loads("\n".join(imports))
    assert not loaded, "set TF_CPP_MIN_LOG_LEVEL before TensorFlow is imported"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_no_model_code_in_notebooks(source):
    """Notebooks call vae_lib; they define no layers, models or optimizer steps of their own
    (a gradient shown for teaching is fine). The own-model notebook is the one that stacks Keras
    layers into an encoder and a decoder, as a practitioner does; it too defines no layer classes
    and no training step."""
    text = source.read_text()
    assert not re.search(r"keras\.Model\b|apply_gradients|class \w+\((keras|tf)\.", text)
    if source.stem != "own_model":
        assert not re.search(r"keras\.layers\.", text)


@pytest.mark.slow
def test_smoke_report_has_every_dataset_and_prior(smoke_grid, data_dir):
    """`vampprior report --profile smoke` from nothing (here on 2 Dask workers, the session's grid:
    every dataset, every prior, the K sweep): each cell keeps a record (no checkpoint, no machine
    paths in its notebook), results.csv has one complete row per record with its path relative to
    the report, and the HTML report has Table 1 for every dataset (the cells the grid left out as
    not run), links (not copies) of its figures, and no stray output above its title. A second run
    finds every record and only rebuilds the report."""
    runs, report, done, command = smoke_grid
    env = dict(os.environ, VAE_DATA_DIR=str(data_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "absl" not in done.stderr and "oneDNN" not in done.stderr, "kernels' start-up lines go to kernel.log"

    from vae_lib.pipeline.config import K_SWEEPS
    from vae_lib.datasets import DATASETS
    from vae_lib.pipeline.registry import PRIORS
    smoke = report / "smoke"
    with open(smoke / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["status"] for r in rows} == {"complete"}
    ran = {(r["dataset"], r["prior"]) for r in rows}
    assert ran == {(d, "vampprior") for d in DATASETS} | {("static_mnist", p) for p in PRIORS}
    assert {int(r["components"]) for r in rows if r["dataset"] == "static_mnist"
            and r["prior"] == "vampprior"} == set(K_SWEEPS["smoke"])
    for r in rows:
        record = smoke / r["run"]
        assert (record / "metrics.json").is_file() and not (record / "checkpoint.npz").exists()
        for name in ("training.ipynb", "evaluation.ipynb"):
            notebook = (record / name).read_text()
            assert str(runs) not in notebook and str(data_dir) not in notebook
    page = (smoke / "index.html").read_text()
    assert "Table 1" in page and "profile <strong>smoke</strong>" in page
    assert "<title>VAE with a VampPrior: smoke report</title>" in page
    body = page[page.index("<body"):]
    first_output = body[body.index('data-mime-type="'):]  # the title, not a stray value before it
    assert first_output.startswith('data-mime-type="text/markdown"'), first_output[:300]
    assert "VAE with a VampPrior: results" in first_output[:3000]
    table = page[page.index("<table>"):page.index("</table>")]
    for dataset in DATASETS:
        assert dataset in table
    assert "failed" not in table
    assert table.count("not run") == len(DATASETS) * len(PRIORS) - len(ran), "the cells left out"
    pictures = {p.name for p in (smoke / "figures").glob("*.png")}
    assert pictures >= {"ll_and_time_vs_K.png", "test_ll_histograms.png",
                        "pseudo_inputs_static_mnist.png", "reconstructions_samples_frey_faces.png"}
    for name in pictures:
        assert f'src="figures/{name}"' in page
    assert "<img src=\"data:image" not in page, "figures are linked, not embedded a second time"

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "skipped" in again.stderr and " done in" not in again.stderr


def test_kept_notebooks_lose_tf_startup_lines_progress_bars_and_paths_but_keep_warnings():
    """nbclean.portable: TensorFlow's C++ start-up lines and tqdm redraws go, a real warning stays,
    papermill's note of the paths becomes relative and its injected cell loses its random id."""
    from vae_lib.pipeline.nbclean import portable

    stderr = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
              "I0000 00:00:1795630838.000778   12063 port.cc:153] oneDNN custom operations are on.\n"
              "UserWarning: the learning rate is very high\n"
              "\rstatic_mnist/vae/vampprior:  37%|###7      | 3/8 [00:01<00:02,  2.1epoch/s]\n")
    notebook = {"metadata": {"papermill": {"input_path": "/work/x/notebooks/experiment.ipynb",
                                           "output_path": "/tmp/runs/paper/a/experiment.ipynb"}},
                "cells": [{"cell_type": "code", "outputs": [
                    {"output_type": "stream", "name": "stderr", "text": stderr},
                    {"output_type": "stream", "name": "stderr", "text": "I0000 00:00:17.1 1 a.cc:1] x\n"},
                    {"output_type": "stream", "name": "stdout", "text": "I0000 is fine on stdout\n"}]},
                          {"cell_type": "code", "id": "0e43b0e1", "outputs": [],
                           "metadata": {"tags": ["injected-parameters"]}}]}
    out = portable(notebook)
    assert out["cells"][1]["id"] == "injected-parameters"
    assert out["metadata"]["papermill"] == {"input_path": "notebooks/experiment.ipynb",
                                            "output_path": "experiment.ipynb"}
    outputs = out["cells"][0]["outputs"]
    assert [o["text"] for o in outputs] == ["UserWarning: the learning rate is very high\n",
                                            "I0000 is fine on stdout\n"]


def test_a_print_split_by_timing_is_kept_in_one_piece():
    """The kernel may send a print's final newline apart on a busy machine: back-to-back outputs of
    one stream are joined (also where only dropped start-up lines stood between them); outputs
    of different streams, or with other output between them, stay apart."""
    from vae_lib.pipeline.nbclean import portable

    stdout = lambda text: {"output_type": "stream", "name": "stdout", "text": text}
    startup = {"output_type": "stream", "name": "stderr", "text": "I0000 00:00:17.1 1 a.cc:1] x\n"}
    warning = {"output_type": "stream", "name": "stderr", "text": "a real warning\n"}
    image = {"output_type": "display_data", "data": {"text/plain": "<Figure>"}}
    cells = [{"cell_type": "code", "outputs": [stdout("No runs."), stdout(["\n"])]},
             {"cell_type": "code", "outputs": [stdout("a\n"), startup, stdout("b\n")]},
             {"cell_type": "code", "outputs": [stdout("a\n"), warning, stdout("b\n"), image, stdout("c\n")]}]
    out = portable({"metadata": {}, "cells": cells})["cells"]
    assert out[0]["outputs"] == [stdout("No runs.\n")]
    assert out[1]["outputs"] == [stdout("a\nb\n")]
    assert [o.get("text") for o in out[2]["outputs"]] == ["a\n", "a real warning\n", "b\n", None, "c\n"]


def _stdout(notebook) -> str:
    return "".join(_text(o.get("text", "")) for c in notebook.cells for o in c.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")


def _text(value):
    return "".join(value) if isinstance(value, list) else value


@pytest.mark.slow
def test_own_model_notebook_at_a_small_budget_trains_compares_and_reloads(tmp_path, data_dir):
    """The own-model notebook run by papermill at a small budget (its committed copy ran at its
    defaults, minutes of fit, which nbval does not repeat): both priors train through `fit` for
    the epochs asked, their test log-likelihoods and the paired difference are printed for the
    images and samples asked, its two figures are drawn, and the saved model, loaded back, scores
    the test images exactly as the trained one."""
    import papermill

    out = tmp_path / "own_model.ipynb"  # the kernel finds the data through $VAE_DATA_DIR (conftest)
    papermill.execute_notebook(str(REPO / "notebooks" / "own_model.ipynb"), str(out),
                               parameters=dict(train_images=500, test_images=50, epochs=2, warmup_epochs=1,
                                               num_components=10, num_samples=10, out_dir=str(tmp_path)),
                               kernel_name="python3", progress_bar=False, cwd=str(REPO))
    notebook = nbformat.read(out, 4)
    text = _stdout(notebook)
    assert "500 training, 2000 validation and 50 test images of shape (28, 28, 1)" in text
    epochs = dict(re.findall(r"^(standard|vampprior) +(\d+) epochs, best validation -ELBO [\d.]+ nats", text, re.M))
    assert epochs == {"standard": "2", "vampprior": "2"}, text
    lls = dict(re.findall(r"^(standard|vampprior) +test log-likelihood +(-[\d.]+) \+- [\d.]+ nats", text, re.M))
    gain = re.search(r"VampPrior - standard, per image: ([+-][\d.]+) \+- [\d.]+ nats \(50 test images, S=10; "
                     r"2 epochs on 500 images: a reduced budget\)", text)
    assert gain and float(gain.group(1)) == pytest.approx(float(lls["vampprior"]) - float(lls["standard"]), abs=0.016)
    figures = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(figures) == 2
    assert (tmp_path / "vampprior_vae.keras").is_file()
    assert "with a VampPrior prior; the same test log-likelihoods as the trained model: True" in text


@pytest.mark.slow
def test_theory_notebook_at_the_smoke_budget_keeps_its_checks(tmp_path, data_dir):
    """The theory notebook run by papermill at the smoke budget (the committed copy was run at the
    quick budget, which nbval does not repeat): its numeric checks hold within tolerances. The
    Monte Carlo KL and its gradient match the closed form; the rate splits into I(x;z) plus
    KL(q(z) || p(z)); the priors add the parameters they should; the 256 discretized-logistic
    probabilities sum to one; the uniform distribution codes 8 bits per pixel."""
    import papermill

    out = tmp_path / "theory.ipynb"  # the kernel finds the data through $VAE_DATA_DIR (conftest)
    papermill.execute_notebook(str(REPO / "notebooks" / "theory.ipynb"), str(out),
                               parameters=dict(profile="smoke"), kernel_name="python3",
                               progress_bar=False, cwd=str(REPO))
    text = _stdout(nbformat.read(out, 4))
    kl_rows = re.findall(r"\|\s+([\d.]+)\s+([\d.]+) \|\s+(-?[\d.]+),\s+(-?[\d.]+)\s+(-?[\d.]+),\s+(-?[\d.]+)", text)
    assert len(kl_rows) == 3, text[:2000]
    for exact, mc, *grads in kl_rows:
        assert abs(float(exact) - float(mc)) < 0.03
        assert grads[:2] == grads[2:]  # rounded to 0.1
    rate = float(re.search(r"closed form : +([\d.]+) nats", text).group(1))
    total = float(re.search(r"sum of the two +: +([\d.]+)", text).group(1))
    assert abs(rate - total) < 0.05
    counts = dict(re.findall(r"^(\w+)\s+prior parameters:\s+(\d+)", text, re.M))
    assert counts == {"standard": "0", "vampprior": str(20 * 784), "mog": str(2 * 20 * 2)}
    sums = re.findall(r"^\s*[\d.]+\s+-?[\d.]+ \|\s+([\d.]+)\s+([\d.]+)$", text, re.M)
    assert len(sums) == 4 and all(float(ours) == pytest.approx(1.0, abs=1e-3) for ours, _ in sums)
    assert any(float(closed) < 0.9 for _, closed in sums), "closed edges lose mass near an edge"
    assert "= 8.000 bits/dim" in text
