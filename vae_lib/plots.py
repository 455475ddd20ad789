"""Figures shared by the notebooks: image grids, learning curves, log-likelihood histograms, the
importance-sampled estimate against the number of samples."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def image_grid(images, image_shape, ncols=10, ax=None, title=None, pad=1):
    """Tile (N, H*W) images in [0, 1] into one grey-scale picture."""
    images = np.asarray(images).reshape(-1, *image_shape)
    n = len(images)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    h, w = image_shape
    canvas = np.ones((nrows * (h + pad) + pad, ncols * (w + pad) + pad))
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = img
    if ax is None:
        _, ax = plt.subplots(figsize=(ncols * w / 28 * 0.7, nrows * h / 28 * 0.7))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def learning_curves(history, ax=None, title=None):
    """Training loss (with the KL weight of its epoch) and validation negative ELBO per epoch."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    epochs = [row["epoch"] for row in history]
    ax.plot(epochs, [row["train_loss"] for row in history], label="train loss (KL weighted)")
    ax.plot(epochs, [row["valid_loss"] for row in history], label="valid -ELBO")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per image")
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def ll_histogram(values_by_label: dict, ax=None, title=None, bins=50, lower_percentile=1.0, colors=None):
    """Overlaid histograms of per-image test log-likelihoods, one per label (``colors``: label ->
    colour, so that a label keeps its colour across panels). The axis starts at the
    ``lower_percentile`` of all values (the long tail of unlikely images would squeeze the rest
    into a few bins); how many images of each label lie below it is said on the axis, not piled
    into a bin."""
    from matplotlib.ticker import MaxNLocator

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    finite = [np.asarray(v) for v in values_by_label.values() if v is not None and len(v)]
    if not finite:
        return ax
    everything = np.concatenate(finite)
    lo, hi = np.percentile(everything, [lower_percentile, 100])
    edges = np.linspace(lo, hi, bins + 1)
    below = []
    for label, values in values_by_label.items():
        if values is not None and len(values):
            ax.hist(values, bins=edges, histtype="step", linewidth=1.5, label=label,
                    color=(colors or {}).get(label))
            below.append(f"{label} {int(np.sum(np.asarray(values) < lo))}/{len(values)}")
    pairs = [", ".join(below[i:i + 2]) for i in range(0, len(below), 2)]  # two a line: panels are narrow
    ax.set_xlabel(f"test log-likelihood per image (nats)\nimages below {lo:.0f}, not shown: "
                  + "\n".join(pairs), fontsize=7)
    ax.set_ylabel("images")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return ax


def convergence_curves(entries, protocol_samples, label, color=None):
    """One panel per dataset: the mean importance-sampled log p(x) over the same test images
    against the number of samples S (log axis), one line per run (``color``: entry -> colour, so
    that a prior keeps its colour across panels); the protocol's S dotted."""
    from .pipeline.convergence import mean_by_samples

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
