"""Command line: ``vampprior train ...`` and ``vampprior report ...`` (also ``python -m vae_lib``)."""
from __future__ import annotations

import argparse
import json
import sys

from .errors import VaeLibError



def _train_parser(sub):
    from .config import PROFILE_DESCRIPTIONS, PROFILES
    from .datasets import DATASETS
    from .priors import PRIORS

    p = sub.add_parser("train", help="train and evaluate one VAE, writing a run directory",
                       description="Train (or resume) one VAE and evaluate its test log-likelihood. "
                                   "Settings default to the chosen --profile; flags override them.")
    p.add_argument("--dataset", required=True, help=f"one of: {', '.join(DATASETS)}")
    p.add_argument("--prior", required=True, help=f"one of: {', '.join(PRIORS)}")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (resumed if it exists)")
    p.add_argument("--profile", default="paper",
                   help="; ".join(f"{k}: {v}" for k, v in PROFILE_DESCRIPTIONS.items()) + " (default: paper)")
    p.add_argument("--components", "-K", type=int, help="pseudo-inputs / mixture components")
    p.add_argument("--epochs", type=int, help="maximum number of epochs")
    p.add_argument("--eval-samples", type=int, help="importance samples per test image (S)")
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--warmup-epochs", type=int, help="KL warm-up epochs")
    p.add_argument("--patience", type=int, help="early-stopping look-ahead in epochs")
    p.add_argument("--activation", choices=["gated", "relu"])
    p.add_argument("--trainable-pseudo-inputs", action="store_true", default=None,
                   help="also learn vampprior_data's pseudo-inputs")
    p.add_argument("--max-train", type=int, help="use only N training images (a fixed-seed random subset)")
    p.add_argument("--max-test", type=int, help="evaluate only N test images (a fixed-seed random subset)")
    p.add_argument("--no-xla", dest="jit_compile", action="store_false", default=None,
                   help="compile with tf.function only, without XLA")
    p.add_argument("--data-dir", help="folder with the dataset files (default: $VAE_DATA_DIR, "
                                      "else download into the user cache)")
    p.add_argument("--checkpoint-every", type=float, default=30.0, metavar="SECONDS",
                   help="save a checkpoint when this long has passed since the last (default: 30; "
                        "0: every epoch); the last epoch is always saved")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    assert set(PROFILES) == set(PROFILE_DESCRIPTIONS)
    return p


def _train(args) -> int:
    from .config import make_config
    from .experiment import is_complete, run_experiment

    config = make_config(
        args.dataset, args.prior, args.profile, components=args.components, epochs=args.epochs,
        eval_samples=args.eval_samples, seed=args.seed, batch_size=args.batch_size,
        learning_rate=args.learning_rate, warmup_epochs=args.warmup_epochs, patience=args.patience,
        activation=args.activation, trainable_pseudo_inputs=args.trainable_pseudo_inputs,
        max_train=args.max_train, max_test=args.max_test, jit_compile=args.jit_compile)
    was_complete = is_complete(args.out)  # said after run_experiment has checked the settings
    metrics = run_experiment(config, args.out, data_dir=args.data_dir, progress=not args.quiet,
                             checkpoint_every_seconds=args.checkpoint_every)
    if was_complete:
        print(f"{args.out} was already complete; nothing was recomputed. Its results:", file=sys.stderr)
    summary = {k: metrics[k] for k in ("dataset", "prior", "components", "epochs_trained",
                                       "best_epoch", "test_ll", "test_ll_stderr", "test_elbo",
                                       "eval_samples", "train_seconds", "eval_seconds")}
    if "test_bits_per_dim" in metrics:
        summary["test_bits_per_dim"] = metrics["test_bits_per_dim"]
    print(json.dumps(summary, indent=2))
    print(f"Wrote {args.out}/metrics.json", file=sys.stderr)
    return 0


def _report_parser(sub):
    from .config import PROFILE_DESCRIPTIONS
    from .datasets import DATASETS
    from .priors import PRIORS

    p = sub.add_parser("report", help="run the dataset x prior grid and render the report",
                       description="Execute the experiment notebook for every dataset x prior "
                                   "(and the K sweep) with papermill, skipping complete runs, then "
                                   "render the report notebook to HTML.")
    p.add_argument("--profile", default="quick",
                   help="; ".join(f"{k}: {v}" for k, v in PROFILE_DESCRIPTIONS.items()) + " (default: quick)")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), metavar="D",
                   help=f"default: all of {' '.join(DATASETS)}")
    p.add_argument("--priors", nargs="+", default=list(PRIORS), metavar="P",
                   help=f"default: all of {' '.join(PRIORS)}")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], metavar="N",
                   help="one run per seed; the report shows mean +- std across seeds")
    p.add_argument("--no-k-sweep", action="store_true", help="skip the test LL against K sweep")
    p.add_argument("--runs-dir", help="where run directories go (default: $VAE_RUNS_DIR, else runs)")
    p.add_argument("--report-dir", help="where the report goes (default: $VAE_REPORT_DIR, else report)")
    p.add_argument("--data-dir", help="folder with the dataset files (default: $VAE_DATA_DIR)")
    p.add_argument("--notebooks", help="folder with experiment.ipynb and report.ipynb")
    return p


def _report(args) -> int:
    from .runner import main_report

    return main_report(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vampprior", description="VAE with a VampPrior in TensorFlow.")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub).set_defaults(handler=_train)
    _report_parser(sub).set_defaults(handler=_report)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except VaeLibError as err:
        print(f"vampprior: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vampprior: interrupted; rerun the same command to resume from the last checkpoint.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
