"""Plans: the cells of a profile (dataset x model x prior x seed, the K sweep, and for the paper
profile its comparisons), each with the run directory it trains in and the record it keeps.

Two places per cell:
  run directory  ``runs_dir/<profile>/<name>/``: where the cell trains; holds its checkpoint, so an
                 interrupted cell resumes there. Outside the repository (``$VAE_RUNS_DIR``).
  record         ``report_dir/<profile>/runs/<name>/``: the run directory without the checkpoint,
                 copied there when the cell completes. Records are what the report reads and what
                 the repository keeps, so a fresh clone re-renders the report without training.

Plain Python: the driver, ``vampprior status`` and Dask workers plan without TensorFlow.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..datasets import DATASETS, check_name
from ..errors import ConfigError, check_choice
from .config import K_SWEEP_SETTINGS, K_SWEEPS, RunConfig, check_profile, check_settings, make_config
from .registry import CONV_MODELS, MODELS, PRIORS, check_prior_name, model_label
from .rundir import changes_text, run_dir_name


# What a cell is in its plan for (the status lines show it in brackets; --purposes filters by it).
PURPOSES = {
    "grid": "Table 1's cells: dataset x prior at the profile's settings",
    "hvae": "the hierarchical VAE's cells",
    "init": "the paper code's initialisation (weight_init=he), against ours",
    "learned_data": "VampPrior-data with learned pseudo-inputs, as the paper's code",
    "k_sweep": "test LL and training time against K",
    "paper_code": "the paper code's optimizer and KL estimator, one at a time, on the small datasets; "
                  "its initialisation and optimizer on the static-MNIST HVAE",
    "conv": "the paper's convolutional models (convHVAE, PixelHVAE) on static and dynamic MNIST; "
            "at the paper's protocol they need a GPU",
}
CONV_DATASETS = ("static_mnist", "dynamic_mnist")


def conv_plan(profile: str) -> list[tuple[RunConfig, str]]:
    """The convolutional models' cells: convHVAE and PixelHVAE with the standard prior and the
    VampPrior on static and dynamic MNIST, seed 0 (the quick and paper profiles; too slow for the
    smoke profile's seconds)."""
    if profile == "smoke":
        return []
    return [(make_config(dataset, prior, profile, model=model), "conv")
            for dataset in CONV_DATASETS for model in CONV_MODELS for prior in HEADLINE_PRIORS]


@dataclass(frozen=True)
class Cell:
    config: RunConfig
    run_dir: Path
    record_dir: Path
    purpose: str  # one of PURPOSES

    @property
    def label(self) -> str:
        c = self.config
        model = "" if c.model == "vae" else f"{c.model}/"
        changes = changes_text(c)  # what tells two cells of one purpose apart, e.g. the optimizer
        return (f"{c.dataset}/{model}{c.prior} K={c.components} seed={c.seed}"
                + (f" ({changes})" if changes else "") + f" [{self.purpose}]")

    @property
    def needs_gpu(self) -> bool:
        """A convolutional model at the paper's protocol: days of a 2-core CPU (see
        :func:`vae_lib.pipeline.status.cpu_estimate`), hours of a GPU."""
        return needs_gpu(self.config)


def needs_gpu(config: RunConfig) -> bool:
    return config.model in CONV_MODELS and config.profile == "paper"


def records_dir(report_dir, profile: str) -> Path:
    return Path(report_dir) / profile / "runs"


# -- plans ----------------------------------------------------------------------------------------
# The paper profile's plan (the paper-results issue): 3 seeds where the comparison is the headline
# (standard vs VampPrior everywhere) or cheap (Caltech 101, Frey Faces), 1 elsewhere.
SMALL = ("caltech101_silhouettes", "frey_faces")
HEADLINE_PRIORS = ("standard", "vampprior")


def paper_plan() -> list[tuple[RunConfig, str]]:
    """(config, purpose) of every cell of the paper report, in the order they run: first one of
    each of the report's results (seed 0 of the grid, then the HVAE and dynamic MNIST headlines,
    FashionMNIST), then the cheap datasets' other seeds and comparisons, the headline's other
    seeds, the K sweep and the remaining HVAE cells. Interrupted and resumed, the runs thus fill
    every section of the report before they refine any; the one exception is the last part, the
    paper code's optimizer and KL estimator (added after the rest had run), which extends the
    small-datasets section."""
    out = []

    def add(dataset, prior, seed, purpose="grid", **settings):
        config = make_config(dataset, prior, "paper", seed=seed, **settings)
        if all(config != c for c, _ in out):
            out.append((config, purpose))

    for dataset in SMALL + ("static_mnist",):
        for prior in PRIORS:
            add(dataset, prior, 0)
    for prior in reversed(HEADLINE_PRIORS):  # the paper's best model first
        add("static_mnist", prior, 0, "hvae", model="hvae")
    for prior in HEADLINE_PRIORS:
        add("dynamic_mnist", prior, 0)
    for prior in PRIORS:
        add("fashion_mnist", prior, 0)
    for seed in (0, 1, 2):
        for dataset in SMALL:
            for prior in PRIORS:
                add(dataset, prior, seed)
            for prior in HEADLINE_PRIORS:  # how much of the ranking is the initialisation's
                add(dataset, prior, seed, "init", weight_init="he")
            add(dataset, "vampprior_data", seed, "learned_data", trainable_pseudo_inputs=True)
    for seed in (1, 2):
        for dataset in ("static_mnist", "fashion_mnist"):
            for prior in HEADLINE_PRIORS:
                add(dataset, prior, seed)
    for k in K_SWEEPS["paper"]:
        add("static_mnist", "vampprior", 0, "k_sweep", components=k, **K_SWEEP_SETTINGS["paper"])
    for seed in (0, 1, 2):
        for dataset in SMALL:
            for prior in HEADLINE_PRIORS:
                add(dataset, prior, seed, "hvae", model="hvae")
    add("dynamic_mnist", "vampprior", 0, "hvae", model="hvae")
    add("fashion_mnist", "vampprior", 0, "hvae", model="hvae")
    # the paper code's other departures (README), each alone, where the ranking is in question ...
    for seed in (0, 1, 2):
        for dataset in SMALL:
            for prior in HEADLINE_PRIORS:
                add(dataset, prior, seed, "paper_code", optimizer="adamnormgrad")
            # the VampPrior has no closed-form KL: its rate is the Monte Carlo one already
            add(dataset, "standard", seed, "paper_code", kl_estimator="monte_carlo")
    # ... and on the HVAE, which stays short of the paper's number with ours
    add("static_mnist", "vampprior", 0, "paper_code", model="hvae", weight_init="he", optimizer="adamnormgrad")
    return out + conv_plan("paper")


def grid_plan(profile, datasets=DATASETS, priors=tuple(PRIORS), seeds=(0,), models=("vae",),
              k_sweep=True) -> list[tuple[RunConfig, str]]:
    """Every dataset x model x prior x seed, then the K sweep (VampPrior on static_mnist)."""
    out = [(make_config(d, p, profile, seed=s, model=m), "grid" if m == "vae" else m)
           for s in seeds for d in datasets for m in models for p in priors]
    if k_sweep and "static_mnist" in datasets:
        out += [(make_config("static_mnist", "vampprior", profile, components=k, seed=s,
                             **K_SWEEP_SETTINGS[profile]), "k_sweep")
                for s in seeds for k in K_SWEEPS[profile]]
    return out


def plan(profile: str, runs_dir, report_dir, datasets=None, priors=None, seeds=None, models=None,
         k_sweep: bool = True, settings: dict | None = None, purposes=None) -> list[Cell]:
    """The cells of ``profile``, without duplicates. The paper profile follows :func:`paper_plan`
    unless ``seeds`` is given; ``datasets``, ``priors``, ``models`` and ``purposes`` (of
    :data:`PURPOSES`) filter any plan, and ``settings`` (RunConfig fields) override every cell's."""
    check_profile(profile)
    check_settings(settings)
    for name in datasets or ():
        check_name(name)
    for name in priors or ():
        check_prior_name(name)
    for name in models or ():
        check_choice("model", name, MODELS)
    for name in purposes or ():
        check_choice("purpose", name, PURPOSES)
    if profile == "paper" and seeds is None:
        pairs = paper_plan()
    else:
        pairs = grid_plan(profile, datasets or DATASETS, priors or tuple(PRIORS), seeds or (0,),
                          models or ("vae",), k_sweep)
        if seeds is None:  # the profile's own plan: the grid, the K sweep, the convolutional cells
            pairs += conv_plan(profile)
    said = "--set " + " ".join(f"{k}={v}" for k, v in (settings or {}).items())
    if settings:  # a value that is wrong anywhere (epochs=-1, model=cnn) is said as such
        try:
            RunConfig().replace(**settings)
        except ConfigError as err:
            raise ConfigError(f"{said}: {err}") from None
    cells, seen = [], set()
    for config, purpose in pairs:
        if ((datasets and config.dataset not in datasets) or (priors and config.prior not in priors)
                or (models and config.model not in models) or (not k_sweep and purpose == "k_sweep")
                or (purposes and purpose not in purposes)):
            continue
        try:
            config = config.replace(**(settings or {}))
        except ConfigError as err:
            raise ConfigError(f"{said} does not apply "
                              f"to the {model_label(config.model)} cell {run_dir_name(config)}: {err} Leave "
                              f"such cells out with the filters (--datasets, --models, --priors).") from None
        if config in seen:
            continue
        seen.add(config)
        name = run_dir_name(config)
        cells.append(Cell(config, Path(runs_dir) / profile / name,
                          records_dir(report_dir, profile) / name, purpose))
    if not cells:
        raise ConfigError(f"No cell of the {profile} profile's plan matches these filters "
                          f"(`vampprior status --profile {profile}` lists its cells with their purposes; "
                          f"--seeds runs the plain grid, which has no init, learned_data or paper_code cells).")
    return cells


def parse_settings(items) -> dict:
    """``["epochs=8", "weight_init=he", "max_train=None"]`` -> {"epochs": 8, "weight_init": "he",
    "max_train": None}: JSON values where they parse (numbers, true/false, null; also None), else
    strings."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set takes KEY=VALUE, got {item!r}.")
        try:
            out[key] = None if value == "None" else json.loads(value)
        except ValueError:
            out[key] = value
    return out
