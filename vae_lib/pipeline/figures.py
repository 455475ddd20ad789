"""The report's composite figures, drawn from run records and the convergence check."""
from __future__ import annotations

import matplotlib.pyplot as plt

from .convergence import mean_by_samples


def convergence_curves(entries, protocol_samples, label, color=None):
    """One panel per dataset: the mean importance-sampled log p(x) over the same test images
    against the number of samples S (log axis), one line per run (``color``: entry -> colour, so
    that a prior keeps its colour across panels); the protocol's S dotted."""
    datasets = sorted({e["dataset"] for e in entries})
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        runs = [e for e in entries if e["dataset"] == dataset]
        for e in runs:
            ax.plot(*mean_by_samples(e), marker="o", markersize=3, label=label(e),
                    color=color(e) if color else None, linestyle="--" if e["model"] == "hvae" else "-")
        ax.axvline(protocol_samples, color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("importance samples S")
        counts = sorted({len(e["images"]) for e in runs})
        ax.set_ylabel(f"mean log p(x) (nats), {'/'.join(map(str, counts))} test images")
        ax.set_title(dataset, fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
