"""Figures for the notebooks: image grids, learning curves, per-image log-likelihood histograms.
matplotlib only; nothing here knows a model."""
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
    """Training loss (with the KL weight of its epoch) and validation negative ELBO per epoch, from
    the rows of a run's history.csv, or from what ``fit`` returns (a ``keras.callbacks.History``,
    or its ``history`` dict: ``loss`` and, with validation data, ``val_loss``)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    logs = getattr(history, "history", history)
    if isinstance(logs, dict):
        history = [dict(epoch=i + 1, train_loss=loss, valid_loss=(logs.get("val_loss") or [None] * (i + 1))[i])
                   for i, loss in enumerate(logs["loss"])]
    epochs = [row["epoch"] for row in history]
    ax.plot(epochs, [row["train_loss"] for row in history], label="train loss (KL weighted)")
    if any(row["valid_loss"] is not None for row in history):
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
