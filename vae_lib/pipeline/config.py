"""Every setting of a run, with the named profiles that set budgets (smoke, quick, paper)."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from ..datasets import DATASETS, check_name, likelihood_of
from ..errors import ConfigError, check_choice
from .registry import MODELS, check_prior_name, model_label

# Also in vae_lib.networks, vae_lib.estimators: here as plain names, so that settings are checked
# without importing TensorFlow.
ACTIVATIONS = ("gated", "relu")
WEIGHT_INITS = ("glorot", "he")
KL_ESTIMATORS = ("closed_form", "monte_carlo")
OPTIMIZERS = ("adam", "adamnormgrad")  # adamnormgrad: vae_lib.optimizers.AdamNormGrad
EVAL_MATMULS = ("float32", "bfloat16")
BFLOAT16_EVAL_LIKELIHOODS = ("bernoulli",)  # vae_lib.estimators.BFLOAT16_LIKELIHOODS


def check_eval_matmuls(matmul_inputs: str, likelihood: str | None) -> str:
    """As :func:`vae_lib.estimators.check_matmul_inputs`, by the likelihood's name."""
    check_choice("evaluation matmul input type", matmul_inputs, EVAL_MATMULS)
    if matmul_inputs == "bfloat16" and likelihood not in BFLOAT16_EVAL_LIKELIHOODS:
        raise ConfigError(f"bfloat16 evaluation matmuls are for binary images only: with the "
                          f"{likelihood} likelihood they can move the test log-likelihood by tenths "
                          f"of a nat. Use eval_matmuls float32 (the default).")
    return matmul_inputs


@dataclass(frozen=True)
class RunConfig:
    """One training-and-evaluation run. Defaults are the paper's settings."""

    dataset: str = "static_mnist"
    prior: str = "vampprior"
    model: str = "vae"  # "vae" (one latent layer) or "hvae" (the paper's two-level HVAE)
    components: int = 500  # K: pseudo-inputs (VampPrior) or mixture components (MoG)
    epochs: int = 2000  # at most; early stopping usually ends sooner
    batch_size: int = 100
    learning_rate: float = 5e-4
    warmup_epochs: int = 100  # KL weight goes linearly from 0 to 1 over these epochs
    patience: int = 50  # early stopping: epochs without a better validation loss
    eval_samples: int = 5000  # S, importance samples per test image
    eval_matmuls: str = "float32"  # "bfloat16": importance sampling's matmuls take bfloat16 inputs
    # and accumulate in float32 (faster; within 0.01 nats on trained models; binary images only)
    seed: int = 0
    latent_dim: int = 40
    hidden_units: int = 300
    num_layers: int = 2
    activation: str = "gated"  # "gated" (the paper's) or "relu"
    weight_init: str = "glorot"  # "glorot" (ours) or "he" (the paper's code); see networks.py
    kl_estimator: str = "closed_form"  # the one-level VAE's: closed form where the prior has one,
    # else Monte Carlo; "monte_carlo": the single-sample estimate for every prior, as the paper's
    # code does. The HVAE's rate is always that single-sample estimate (as in the paper's code).
    optimizer: str = "adam"  # "adam" or "adamnormgrad" (the paper's code: normalised gradients)
    trainable_pseudo_inputs: bool | None = None  # None: learned for vampprior, fixed for vampprior_data
    min_steps: int | None = None  # train at least this many optimizer steps (more epochs on small sets)
    max_train: int | None = None  # use only N images of a split, a fixed-seed subset (reduced budgets)
    max_valid: int | None = None
    max_test: int | None = None
    jit_compile: bool = True  # XLA for the training step and the evaluation
    profile: str = "custom"  # the profile these settings came from, for the record

    def __post_init__(self):
        check_types(self)
        check_name(self.dataset)
        check_prior_name(self.prior)
        check_choice("model", self.model, MODELS)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("weight init", self.weight_init, WEIGHT_INITS)
        check_choice("KL estimator", self.kl_estimator, KL_ESTIMATORS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.model != "vae" and self.kl_estimator != "closed_form":
            raise ConfigError(f"The {model_label(self.model)}'s rate is always the single-sample Monte Carlo "
                              f"estimate (as in the paper's code), so --kl-estimator has no effect on it; "
                              f"leave it out.")
        check_eval_matmuls(self.eval_matmuls, likelihood_of(self.dataset))
        positive = dict(components=self.components, batch_size=self.batch_size,
                        eval_samples=self.eval_samples, latent_dim=self.latent_dim,
                        hidden_units=self.hidden_units, num_layers=self.num_layers,
                        learning_rate=self.learning_rate, patience=self.patience, epochs=self.epochs)
        for key in ("max_train", "max_valid", "max_test", "min_steps"):
            if getattr(self, key) is not None:
                positive[key] = getattr(self, key)
        for key, value in positive.items():
            if not value > 0:
                raise ConfigError(f"{key} must be positive, got {value}.")
        for key in ("warmup_epochs", "seed"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self, key)}.")

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def epochs_for(self, num_train: int) -> int:
        """The epoch cap for ``num_train`` training images: ``epochs``, or more where ``min_steps``
        asks for more optimizer steps than that (small datasets under a reduced budget)."""
        if not self.min_steps:
            return self.epochs
        steps_per_epoch = -(-num_train // self.batch_size)
        return max(self.epochs, -(-self.min_steps // steps_per_epoch))

    def differences_from_profile(self) -> dict:
        """The settings whose values differ from this config's profile (dataset, prior and profile
        aside; for a model other than the VAE, its own settings, :data:`MODEL_SETTINGS`, count as
        the profile's), e.g. ``{"seed": 1, "weight_init": "he"}``: with the dataset, prior and
        profile, what rebuilds this config through :func:`make_config`."""
        defaults = make_config(self.dataset, self.prior, self.profile, model=self.model).to_dict() \
            if self.profile in PROFILES else RunConfig(dataset=self.dataset, prior=self.prior).to_dict()
        defaults["model"] = RunConfig.model  # the model's own settings are defaults, the model is not
        return {key: value for key, value in self.to_dict().items()
                if key not in ("dataset", "prior", "profile") and value != defaults[key]}

    @classmethod
    def from_dict(cls, values: dict) -> "RunConfig":
        """Settings from a config.json; a setting it lacks (written before the setting existed)
        takes its default, so older run directories stay valid (all but an HVAE's written with
        kl_estimator=monte_carlo before that was refused; none such was kept)."""
        check_settings(values, allowed=set(SETTINGS) | {"dataset", "prior", "profile"})
        return cls(**values)


_KINDS = {"int": ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
          "float": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
          "str": ("a name", lambda v: isinstance(v, str)),
          "bool": ("true or false", lambda v: isinstance(v, bool))}


def check_types(config: RunConfig) -> None:
    """A ConfigError naming the first setting whose value is not of its declared type (``--set
    epochs=abc`` or ``components=2.5``), before any other check compares it."""
    for field in dataclasses.fields(config):
        kind, optional = str(field.type).replace(" | None", ""), " | None" in str(field.type)
        value = getattr(config, field.name)
        if (optional and value is None) or kind not in _KINDS:
            continue
        words, ok = _KINDS[kind]
        if not ok(value):
            raise ConfigError(f"{field.name} must be {words}{' or null' if optional else ''}, got {value!r}.")


SETTINGS = tuple(f.name for f in dataclasses.fields(RunConfig) if f.name not in ("dataset", "prior", "profile"))


def check_settings(settings: dict, allowed=SETTINGS) -> dict:
    """``settings`` if every key is a RunConfig field in ``allowed``, else a ConfigError naming them."""
    unknown = sorted(set(settings or {}) - set(allowed))
    if unknown:
        raise ConfigError(f"Unknown setting(s) {', '.join(unknown)}. Known: {', '.join(sorted(allowed))}.")
    return settings


# Budgets. "paper" is the paper's protocol; the others are reduced budgets, and every result
# they produce is labelled with the profile's name.
PROFILES: dict[str, dict] = {
    # smoke runs without XLA: compiling would take longer than the run itself
    "smoke": dict(epochs=2, warmup_epochs=1, patience=5, components=20, eval_samples=10,
                  max_train=500, max_valid=200, max_test=100, hidden_units=64, jit_compile=False),
    "quick": dict(epochs=30, warmup_epochs=10, patience=10, components=100, eval_samples=500,
                  min_steps=3000, max_train=10_000, max_valid=2000, max_test=1000),
    "paper": dict(epochs=2000, warmup_epochs=100, patience=50, components=500, eval_samples=5000),
}
# The "test LL and training time against K" sweep (VampPrior on static_mnist): the numbers of
# pseudo-inputs, and settings that differ from the profile's grid runs.
K_SWEEPS: dict[str, list[int]] = {
    "smoke": [5, 20],
    "quick": [10, 50, 100, 250],
    "paper": [1, 10, 50, 100, 250, 500, 1000, 1500],
}
K_SWEEP_SETTINGS: dict[str, dict] = {
    "smoke": {},
    "quick": {},
    # as the reference report's Figure 5: 100 epochs each; the KL warm-up ends at epoch 25
    "paper": dict(epochs=100, warmup_epochs=25),
}
PROFILE_DESCRIPTIONS = {
    "smoke": "seconds per run, without XLA; checks that everything runs, numbers mean nothing",
    "quick": "reduced budget: 30 epochs (at least 3000 steps), 10k-image subsets, K=100, S=500",
    "paper": "the paper's protocol: up to 2000 epochs, KL warm-up 100, early stopping 50, K=500, S=5000",
}


def default_runs_dir() -> str:
    """Where run directories go unless told: ``$VAE_RUNS_DIR``, else ``runs`` (relative)."""
    return os.environ.get("VAE_RUNS_DIR", "runs")


def default_report_dir() -> str:
    """Where the report goes unless told: ``$VAE_REPORT_DIR``, else ``report`` (relative)."""
    return os.environ.get("VAE_REPORT_DIR", "report")


def check_profile(name: str) -> str:
    return check_choice("profile", name, PROFILES)


# Settings a model has in every profile unless told otherwise. The convolutional models run
# without XLA: on this project's CPUs XLA's convolutions ran slower than TensorFlow's own (1.8 s
# against 1.0 s a training step), and compiling their compiled epoch took over 14 minutes.
MODEL_SETTINGS: dict[str, dict] = {"convhvae": dict(jit_compile=False), "pixelhvae": dict(jit_compile=False)}


def make_config(dataset: str, prior: str, profile: str = "paper", **overrides) -> RunConfig:
    """Settings of ``profile`` for one dataset and prior (and the model's own, :data:`MODEL_SETTINGS`);
    ``overrides`` that are None are ignored."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    settings = dict(PROFILES[check_profile(profile)])
    settings.update(MODEL_SETTINGS.get(overrides.get("model", "vae"), {}))
    settings.update(overrides)
    return RunConfig(dataset=dataset, prior=prior, profile=profile, **settings)


__all__ = ["RunConfig", "PROFILES", "make_config", "check_profile", "DATASETS"]
