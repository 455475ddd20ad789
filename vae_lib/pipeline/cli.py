"""Command line: ``vampprior train ...``, ``vampprior report ...`` and ``vampprior status ...``
(also ``python -m vae_lib``)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import ConfigError, VaeLibError



# Flags of `vampprior train` that set a RunConfig field of the same name: (flag, argparse kwargs).
_SETTING_FLAGS = [
    ("--model", dict(help="vae (one latent layer, default), hvae (the paper's two-level HVAE), or its "
                          "convolutional convhvae and pixelhvae")),
    ("--components", dict(type=int, help="K: pseudo-inputs / mixture components")),
    ("--epochs", dict(type=int, help="maximum number of epochs")),
    ("--min-steps", dict(type=int, help="train at least this many optimizer steps")),
    ("--eval-samples", dict(type=int, help="S: importance samples per test image")),
    ("--eval-matmuls", dict(help="float32 (default) or bfloat16: the input type of importance "
                                 "sampling's matmuls (float32 accumulation; faster, within 0.01 "
                                 "nats; binary images only)")),
    ("--seed", dict(type=int)),
    ("--batch-size", dict(type=int)),
    ("--learning-rate", dict(type=float)),
    ("--warmup-epochs", dict(type=int, help="KL warm-up epochs")),
    ("--patience", dict(type=int, help="early stopping: stop after patience + 1 epochs without "
                                       "a better validation loss")),
    ("--latent-dim", dict(type=int)),
    ("--hidden-units", dict(type=int)),
    ("--num-layers", dict(type=int, help="hidden layers of each MLP")),
    ("--activation", dict(help="gated (the paper's) or relu")),
    ("--weight-init", dict(help="glorot (default) or he (the paper's code)")),
    ("--kl-estimator", dict(help="the VAE's rate: closed_form (where the prior has one, i.e. the "
                                 "standard prior; default) or monte_carlo (the paper's code); the "
                                 "HVAE's is always Monte Carlo, and the option is refused with it")),
    ("--optimizer", dict(help="adam (default) or adamnormgrad (the paper's code)")),
    ("--max-train", dict(type=int, help="use only N training images (a fixed-seed random subset)")),
    ("--max-valid", dict(type=int, help="use only N validation images (likewise)")),
    ("--max-test", dict(type=int, help="evaluate only N test images (likewise)")),
]


def _train_parser(sub):
    from .config import PROFILE_DESCRIPTIONS
    from ..datasets import DATASETS
    from .registry import PRIORS

    p = sub.add_parser("train", help=COMMANDS["train"][0],
                       description="Train (or resume) one model and evaluate its test log-likelihood. "
                                   "Settings default to the chosen --profile; flags override them.")
    p.add_argument("--dataset", required=True, help=f"one of: {', '.join(DATASETS)}")
    p.add_argument("--prior", required=True, help=f"one of: {', '.join(PRIORS)}")
    p.add_argument("--out", metavar="RUN_DIR",
                   help="run directory, resumed if it exists (default: $VAE_RUNS_DIR, else runs, "
                        "then <profile>/<name of the settings>: where `vampprior report` trains them)")
    p.add_argument("--profile", default="paper",
                   help="; ".join(f"{k}: {v}" for k, v in PROFILE_DESCRIPTIONS.items()) + " (default: paper)")
    for flag, kwargs in _SETTING_FLAGS:
        p.add_argument(flag, **kwargs)
    p.add_argument("--trainable-pseudo-inputs", action="store_true", default=None,
                   help="also learn vampprior_data's pseudo-inputs (initialised at training images "
                        "plus N(0, 0.01^2) noise, as the paper's code does)")
    p.add_argument("--no-xla", dest="jit_compile", action="store_false", default=None,
                   help="compile with tf.function only, without XLA")
    p.add_argument("--data-dir", help="folder with the dataset files (default: $VAE_DATA_DIR, "
                                      "else download into the user cache)")
    p.add_argument("--checkpoint-every", type=float, default=30.0, metavar="SECONDS",
                   help="save a checkpoint when this long has passed since the last (default: 30; "
                        "0: every epoch); the last epoch is always saved")
    p.add_argument("--threads", type=int, metavar="N",
                   help="TensorFlow threads (default: every core this process may use)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _train(args) -> int:
    from .config import make_config
    from .rundir import claimed, default_run_dir, is_complete, prepare_run_dir

    _check_threads(args.threads)
    settings = {flag[2:].replace("-", "_"): None for flag, _ in _SETTING_FLAGS}
    settings.update(trainable_pseudo_inputs=None, jit_compile=None)
    config = make_config(args.dataset, args.prior, args.profile,
                         **{key: getattr(args, key) for key in settings})
    out = args.out or str(default_run_dir(config))
    if not args.out:
        print(f"Run directory: {out}", file=sys.stderr)
    import_tensorflow_quietly()  # once the settings are valid: a wrong flag fails at once
    from .experiment import run_experiment

    was_complete = is_complete(out)  # said after run_experiment has checked the settings
    prepare_run_dir(Path(out), config)
    with claimed(Path(out)):
        metrics = run_experiment(config, out, data_dir=args.data_dir, progress=not args.quiet,
                                 checkpoint_every_seconds=args.checkpoint_every, threads=args.threads)
    if was_complete:
        print(f"{out} was already complete; nothing was recomputed. Its results:", file=sys.stderr)
    summary = {k: metrics[k] for k in ("dataset", "model", "prior", "components", "epochs_trained",
                                       "best_epoch", "test_ll", "test_ll_stderr", "test_ll_mc_stderr",
                                       "test_elbo", "eval_samples", "train_seconds", "eval_seconds")}
    if "test_bits_per_dim" in metrics:
        summary["test_bits_per_dim"] = metrics["test_bits_per_dim"]
    print(json.dumps(summary, indent=2))
    if not was_complete:
        print(f"Wrote {out}/metrics.json", file=sys.stderr)
    return 0


def _plan_arguments(p) -> None:
    """The options that choose a profile's cells and where they live (report and status)."""
    from .config import PROFILE_DESCRIPTIONS
    from ..datasets import DATASETS
    from .registry import MODELS, PRIORS
    from .plans import PURPOSES

    p.add_argument("--profile", default="quick",
                   help="; ".join(f"{k}: {v}" for k, v in PROFILE_DESCRIPTIONS.items()) + " (default: quick)")
    p.add_argument("--datasets", nargs="+", metavar="D", help=f"default: all of {' '.join(DATASETS)}")
    p.add_argument("--priors", nargs="+", metavar="P", help=f"default: all of {' '.join(PRIORS)}")
    p.add_argument("--models", nargs="+", metavar="M", help=f"of: {' '.join(MODELS)} (default: vae; "
                   "the paper profile's plan has both)")
    p.add_argument("--seeds", nargs="+", type=int, metavar="N",
                   help="one run per seed; the report shows mean +- std across seeds (default: 0). "
                        "The paper profile follows its plan (3 seeds for some cells, HVAE and "
                        "variant cells) unless --seeds is given; with it, any profile runs the plain "
                        "grid: every dataset x prior x --models with those seeds, and the K sweep")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a setting in every cell, e.g. --set epochs=50 --set weight_init=he "
                        "(any RunConfig field; the run names say so)")
    p.add_argument("--purposes", nargs="+", metavar="P",
                   help="only the plan's cells of these purposes (shown in brackets by `status`): "
                        + "; ".join(f"{k}: {v}" for k, v in PURPOSES.items()))
    p.add_argument("--no-k-sweep", action="store_true", help="skip the test LL against K sweep")
    p.add_argument("--runs-dir", help="where run directories go (default: $VAE_RUNS_DIR, else runs)")
    p.add_argument("--report-dir", help="where reports go, one folder per profile, with the kept "
                                        "records of its cells (default: $VAE_REPORT_DIR, else report)")


def _report_parser(sub):
    p = sub.add_parser("report", help=COMMANDS["report"][0],
                       description="Execute the training and evaluation notebooks with papermill for every cell "
                                   "of the profile's plan (datasets x priors x models x seeds, and "
                                   "the K sweep), skipping cells that already have a record, then "
                                   "render the report notebook to HTML (the paper profile's, in "
                                   "this checkout's report/paper, also puts its Table 1 into the "
                                   "README). Exit status: 0 when every cell has its record, 1 "
                                   "when a cell failed, 3 when cells were left to another process "
                                   "that is running them (the report shows them as not run), 4 "
                                   "when cells that need a GPU were left out (none visible); "
                                   "with --render-only, 0 once rendered; 2 for bad arguments "
                                   "or settings, before any work.")
    _plan_arguments(p)
    p.add_argument("--rerun", action="store_true",
                   help="ignore the kept records and run every cell again (in --runs-dir)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="run N cells at once on a local Dask cluster of N single-threaded processes "
                        "(needs the dask extra: pip install -e '.[dask]'; default 1: one after the "
                        "other, without Dask)")
    p.add_argument("--scheduler", metavar="ADDRESS_OR_FILE",
                   help="run the cells on an existing Dask cluster: tcp://HOST:PORT or a scheduler "
                        "file (dask scheduler --scheduler-file PATH); run and report folders must be "
                        "on a filesystem every worker sees at the same path")
    p.add_argument("--retries", type=int, default=1,
                   help="on Dask: run a cell whose notebook failed again this many times (default 1)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="TensorFlow threads per cell (default: every core; on Dask: the worker's)")
    p.add_argument("--checkpoint-every", type=float, default=30.0, metavar="SECONDS",
                   help="save each cell's checkpoint when this long has passed since the last "
                        "(default: 30; 0: every epoch)")
    p.add_argument("--gpu-cells-on-cpu", action="store_true",
                   help="also run the cells that need a GPU (the convolutional models at the paper's "
                        "protocol: days each on a 2-core CPU) where none is visible")
    p.add_argument("--render-only", action="store_true",
                   help="run no cell: render the report from the records kept so far (cells "
                        "without one show as not run)")
    p.add_argument("--data-dir", help="folder with the dataset files (default: $VAE_DATA_DIR)")
    p.add_argument("--notebooks", help="folder with training.ipynb, evaluation.ipynb and report.ipynb (default: the checkout's notebooks/)")
    return p


EXIT_BUSY = 3  # the report was rendered, but cells another process runs show as not run yet
EXIT_NEEDS_GPU = 4  # the report was rendered, but cells that need a GPU were left out (none visible)


def _check_threads(threads) -> None:
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}.")


def _report(args) -> int:
    from .cells import notebook_path
    from .config import check_profile, default_report_dir
    from .plans import parse_settings
    from .rundir import check_writable
    from .runner import build_report, run_report

    _check_threads(args.threads)
    if args.workers < 1 or args.retries < 0:
        raise ConfigError("--workers must be at least 1, and --retries at least 0.")
    if args.render_only:
        if args.rerun:
            raise ConfigError("--render-only runs nothing, so it cannot --rerun; choose one.")
        check_profile(args.profile)
        report_dir = args.report_dir or default_report_dir()
        check_writable(Path(report_dir) / args.profile, "report folder", "--report-dir")
        html = build_report(args.profile, report_dir, notebook_path("report", args.notebooks))
        print(f"report: {html}", file=sys.stderr)
        return 0
    counts = run_report(args.profile, args.runs_dir, args.report_dir, args.datasets, args.priors,
                        tuple(args.seeds) if args.seeds else None, args.models, args.data_dir,
                        args.notebooks, not args.no_k_sweep, args.rerun, args.workers,
                        args.scheduler, args.retries, args.threads, parse_settings(args.set),
                        args.checkpoint_every, log=lambda *a, **k: print(*a, **k, file=sys.stderr),
                        purposes=args.purposes, gpu_cells_on_cpu=args.gpu_cells_on_cpu)
    if counts["failed"]:
        return 1
    if counts.get("busy"):
        return EXIT_BUSY
    return EXIT_NEEDS_GPU if counts.get("needs a GPU") else 0


def _status_parser(sub):
    p = sub.add_parser("status", help=COMMANDS["status"][0],
                       description="One line per cell of a profile's plan: recorded (its test "
                                   "log-likelihood), complete, running (its epoch), interrupted "
                                   "(resumes), failed (why) or not started. Reads only; no "
                                   "TensorFlow. Chooses cells with the same options as `report`.")
    _plan_arguments(p)
    return p


def _status(args) -> int:
    from .config import check_profile, default_report_dir, default_runs_dir
    from .plans import parse_settings, plan, records_dir
    from .status import compute_left, status_lines

    check_profile(args.profile)
    runs_dir = Path(args.runs_dir or default_runs_dir())
    report_dir = Path(args.report_dir or default_report_dir())
    cells = plan(args.profile, runs_dir, report_dir, args.datasets, args.priors,
                 tuple(args.seeds) if args.seeds else None, args.models, not args.no_k_sweep,
                 parse_settings(args.set), args.purposes)
    print(f"profile {args.profile}: runs in {runs_dir / args.profile}, records in "
          f"{records_dir(report_dir, args.profile)}")
    print("\n".join(status_lines(cells)))
    print(compute_left(cells))
    return 0


COMMANDS = {
    "train": ("train and evaluate one model, writing a run directory", _train_parser, _train),
    "report": ("run a profile's plan of cells and render its report", _report_parser, _report),
    "status": ("where a profile's plan stands, one line a cell (reads only)", _status_parser, _status),
}


def build_parser(full: bool = True) -> argparse.ArgumentParser:
    """The command line. ``full=False`` knows the commands but not their options: enough for
    ``vampprior --help``, and it loads neither TensorFlow nor the registries."""
    parser = argparse.ArgumentParser(prog="vampprior", description="VAE with a VampPrior in TensorFlow.")
    sub = parser.add_subparsers(dest="command", required=True)
    parser.commands = {}  # name -> its parser, whose usage an unknown argument is told with
    for name, (help_text, make, handler) in COMMANDS.items():
        if full:
            parser.commands[name] = make(sub)
            parser.commands[name].set_defaults(handler=handler)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up lines (printed on file descriptor 2 before any log
    level applies) kept off the terminal. What it prints is captured in a temporary file and
    written back, but for those lines; all of it if the import fails."""
    import os
    import tempfile

    from .io import fd2_to
    from .nbclean import TF_STARTUP_LINE

    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3") < "2":
        import tensorflow  # noqa: F401
        return
    with tempfile.TemporaryFile(mode="w+") as captured:
        failed = True
        try:
            with fd2_to(captured):
                import tensorflow  # noqa: F401
            failed = False
        finally:
            captured.seek(0)
            for line in captured:
                if failed or not TF_STARTUP_LINE.match(line):
                    sys.stderr.write(line)


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ INFO and WARNING lines (oneDNN, CPU features, CUDA probing) out of this
    process and of the notebook kernels it starts, unless TF_CPP_MIN_LOG_LEVEL says otherwise."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv=None) -> int:
    quiet_tensorflow()
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:  # top-level help, or an unknown command
        build_parser(full=False).parse_args(argv)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said with the command's own usage, not the top level's
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.handler(args)
    except VaeLibError as err:
        print(f"vampprior: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vampprior: interrupted; rerun the same command to go on from what was kept (the last "
              "checkpoint, and the test images already sampled).", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
