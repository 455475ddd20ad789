"""What the main job runs: the paper profile's plan holds every cell the paper report needs, at the
paper's protocol, each once, in an order that fills every section of the report before it adds
seeds; a filtered plan keeps that order. Nothing is run."""
from __future__ import annotations

import pytest

from helpers import run_and_see_if_tensorflow_loads
from vae_lib.pipeline.config import K_SWEEPS, PROFILES, make_config
from vae_lib.datasets import DATASETS
from vae_lib.pipeline.registry import PRIORS
from vae_lib.pipeline.plans import SMALL, paper_plan, plan


def _keys(pairs):
    return [(c.model, c.dataset, c.prior, c.seed, c.components, c.weight_init,
             c.trainable_pseudo_inputs, c.epochs, c.optimizer, c.kl_estimator) for c, _ in pairs]


def test_paper_plan_has_each_cell_once_at_the_papers_protocol():
    pairs = paper_plan()
    keys = _keys(pairs)
    assert len(set(keys)) == len(keys), "no cell twice"
    protocol = PROFILES["paper"]
    for config, purpose in pairs:
        assert config.profile == "paper" and config.eval_samples == protocol["eval_samples"] == 5000
        if purpose == "k_sweep":  # the reference report's Figure 5 budget
            assert (config.epochs, config.warmup_epochs) == (100, 25)
        else:
            assert (config.epochs, config.warmup_epochs, config.patience, config.components) == (
                protocol["epochs"], protocol["warmup_epochs"], protocol["patience"], 500)
    grid = {(d, p) for m, d, p, s, k, init, learned, _, opt, kl in keys
            if (m, s, init, opt, kl) == ("vae", 0, "glorot", "adam", "closed_form") and not learned}
    assert grid >= {(d, p) for d in DATASETS if d != "dynamic_mnist" for p in PRIORS}
    assert {("dynamic_mnist", "standard"), ("dynamic_mnist", "vampprior")} <= grid
    for dataset in ("static_mnist", "fashion_mnist", "caltech101_silhouettes", "frey_faces"):
        for prior in ("standard", "vampprior"):  # the headline comparison has 3 seeds
            assert {s for m, d, p, s, _, init, learned, _, opt, kl in keys
                    if (m, d, p, init, opt, kl) == ("vae", dataset, prior, "glorot", "adam", "closed_form")} == {0, 1, 2}
    # the paper code's departures, each alone against ours, with the seeds of the cells they pair with
    code = {(c.model, c.dataset, c.prior, c.seed, c.weight_init, c.optimizer, c.kl_estimator)
            for c, purpose in pairs if purpose == "paper_code"}
    assert code == ({("vae", d, p, s, "glorot", "adamnormgrad", "closed_form") for d in SMALL
                     for p in ("standard", "vampprior") for s in (0, 1, 2)}
                    | {("vae", d, "standard", s, "glorot", "adam", "monte_carlo") for d in SMALL for s in (0, 1, 2)}
                    | {("hvae", "static_mnist", "vampprior", 0, "he", "adamnormgrad", "closed_form")})
    hvae = {(d, p) for m, d, p, *_ in keys if m == "hvae"}
    assert {("static_mnist", "vampprior"), ("dynamic_mnist", "vampprior"), ("fashion_mnist", "vampprior")} <= hvae
    sweep = sorted(c.components for c, purpose in pairs if purpose == "k_sweep")
    assert sweep == sorted(K_SWEEPS["paper"])


def test_paper_plan_fills_every_section_before_adding_seeds():
    """Runs interrupted at any point leave the report with something in each section first: every
    dataset, the HVAE, the initialisation and learned-pseudo-input comparisons appear before the
    first cell of a second seed; the K sweep is the one section that waits (it is many long runs)."""
    pairs = paper_plan()
    first_seed1 = next(i for i, (c, _) in enumerate(pairs) if c.seed > 0)
    before = pairs[:first_seed1]
    assert {c.dataset for c, _ in before} == set(DATASETS)
    assert {purpose for _, purpose in before} >= {"grid", "hvae", "init", "learned_data"}
    assert pairs[0][0].dataset in ("caltech101_silhouettes", "frey_faces"), "minutes, not an hour, first"


def test_a_filtered_plan_keeps_the_order_and_one_folder_per_cell(tmp_path):
    full = plan("paper", tmp_path / "runs", tmp_path / "report")
    small = plan("paper", tmp_path / "runs", tmp_path / "report", datasets=["frey_faces"], models=["vae"])
    assert [c.run_dir for c in small] == [c.run_dir for c in full
                                          if c.config.dataset == "frey_faces" and c.config.model == "vae"]
    assert len({c.run_dir for c in full}) == len(full)
    assert all(c.record_dir.parent == tmp_path / "report" / "paper" / "runs" for c in full)


def test_purposes_pick_parts_of_a_plan_and_an_unknown_one_is_refused(tmp_path):
    """--purposes k_sweep is the K sweep alone (K = 1 to 1500 in the paper plan, in its order);
    two purposes are their union; a name the plans do not use is a clear error."""
    from vae_lib.errors import ConfigError
    from vae_lib.pipeline.plans import PURPOSES

    full = plan("paper", tmp_path, tmp_path)
    assert {c.purpose for c in full} == set(PURPOSES)
    sweep = plan("paper", tmp_path, tmp_path, purposes=["k_sweep"])
    assert [c.config.components for c in sweep] == K_SWEEPS["paper"]
    both = plan("paper", tmp_path, tmp_path, purposes=["init", "learned_data"])
    assert [c.run_dir for c in both] == [c.run_dir for c in full if c.purpose in ("init", "learned_data")]
    assert {c.purpose for c in plan("quick", tmp_path, tmp_path, models=["vae", "hvae"], purposes=["hvae"])} == {"hvae"}
    with pytest.raises(ConfigError, match="Unknown purpose 'sweep'.*k_sweep"):
        plan("paper", tmp_path, tmp_path, purposes=["sweep"])
    with pytest.raises(ConfigError, match="No cell of the paper profile's plan matches"):
        plan("paper", tmp_path, tmp_path, seeds=(0,), purposes=["init"])  # the plain grid has none


def test_a_setting_the_hvae_refuses_applies_once_its_cells_are_filtered_out(tmp_path):
    """--set kl_estimator=monte_carlo: the HVAE refuses it (its rate is Monte Carlo already), so a
    plan with HVAE cells says which cell and how to leave it out; filtered to the VAE it applies."""
    from vae_lib.errors import ConfigError

    monte_carlo = {"kl_estimator": "monte_carlo"}
    with pytest.raises(ConfigError, match=r"does not apply to the HVAE cell .*Leave such cells out with the filters \(--datasets, --models"):
        plan("paper", tmp_path, tmp_path, settings=monte_carlo)
    cells = plan("paper", tmp_path, tmp_path, models=["vae"], settings=monte_carlo)
    assert cells and all(c.config.kl_estimator == "monte_carlo" and c.config.model == "vae" for c in cells)


def test_the_driver_and_dask_workers_handle_cells_without_tensorflow(tmp_path):
    """Promise: `vampprior report` and its Dask workers start in a moment: the command line, the
    plan, and a cell unpickled in a fresh interpreter (as a worker receives it) load no TensorFlow;
    only the notebooks' kernels do."""
    cells = tmp_path / "cells.pickle"
    plan_them = ("import pickle\nfrom vae_lib.pipeline.cli import build_parser\nfrom vae_lib.pipeline.plans import plan\n"
                 "build_parser().parse_args(['report', '--profile', 'paper'])\n"
                 f"cells = plan('paper', {str(tmp_path)!r}, {str(tmp_path)!r})\n"
                 f"open({str(cells)!r}, 'wb').write(pickle.dumps(cells))\n"
                 "print(len(cells))")
    receive_them = ("import pickle\nimport vae_lib.pipeline.distributed\n"
                    f"cells = pickle.loads(open({str(cells)!r}, 'rb').read())\n"
                    "print(len(cells))")
    for code in (plan_them, receive_them):
        assert run_and_see_if_tensorflow_loads(code) == (str(len(paper_plan())), False)


@pytest.mark.parametrize("profile", ["smoke", "quick", "paper"])
def test_every_cell_is_rebuilt_from_the_settings_its_notebooks_are_given(profile, tmp_path):
    """The main job gives each cell's notebooks its dataset, prior, profile and the settings that
    differ from the profile; from those they must rebuild that very cell's config (and so its run
    directory), for every cell of every plan, the convolutional ones with their own defaults too."""
    for cell in plan(profile, tmp_path, tmp_path):
        c = cell.config
        assert make_config(c.dataset, c.prior, c.profile, **c.differences_from_profile()) == c, cell.label


@pytest.mark.parametrize("profile", ["smoke", "quick"])
def test_the_reduced_profiles_plan_every_dataset_with_every_prior_and_the_k_sweep(profile, tmp_path):
    """What the main job runs for smoke and quick: the full dataset x prior product at the profile's
    K, and the K sweep's other K on static MNIST (the session's shared smoke grid runs a covering
    subset of the smoke plan, conftest.SMOKE_GRID)."""
    from vae_lib.pipeline.config import K_SWEEPS, PROFILES

    cells = [c.config for c in plan(profile, tmp_path, tmp_path) if c.config.model in ("vae", None)]
    grid = {(c.dataset, c.prior) for c in cells if c.components == PROFILES[profile]["components"]}
    assert grid == {(d, p) for d in DATASETS for p in PRIORS}
    assert {c.components for c in cells if (c.dataset, c.prior) == ("static_mnist", "vampprior")} == set(
        K_SWEEPS[profile]) | {PROFILES[profile]["components"]}
