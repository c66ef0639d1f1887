"""PNG figures: learning curves, a grid of predicted keypoints, a grid-search heatmap, the
learning-rate range test."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ._atomic import atomic_write  # noqa: E402
from .keypoints import IMAGE_SIDE, PIXEL_ORIGIN  # noqa: E402


def _save(fig, path) -> Path:
    """Save atomically (_atomic.atomic_write): a reader never sees a half-written PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_write(path, "wb") as f:
            fig.savefig(f, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def learning_curves(histories, path, title="") -> Path:
    """Train and valid loss per epoch on a log scale, as in the tutorial.

    ``histories``: one skorch history, or {name: history} for several nets (specialists),
    drawn in one colour each (train solid, valid dashed).
    """
    if not isinstance(histories, dict):
        histories = {"": histories}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, history) in enumerate(histories.items()):
        colours = ("C0", "C1") if len(histories) == 1 else (f"C{i}", f"C{i}")
        prefix = f"{name} " if name and len(histories) > 1 else ""
        epochs = [row["epoch"] for row in history]
        ax.plot(epochs, [row["train_loss"] for row in history], lw=2, color=colours[0],
                label=f"{prefix}train loss")
        valid = [row.get("valid_loss") for row in history]
        if any(v is not None for v in valid):
            ax.plot(epochs, [np.nan if v is None else v for v in valid], lw=2, color=colours[1],
                    ls="-" if len(histories) == 1 else "--", label=f"{prefix}valid loss")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (unit scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small" if len(histories) > 1 else None)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def prediction_grid(images, keypoints, path, title="") -> Path:
    """A 4x4 grid of the first 16 images with predicted keypoints (pixels) drawn on them."""
    n = min(16, len(images))
    fig, axes = plt.subplots(4, 4, figsize=(8, 8))
    fig.subplots_adjust(left=0, right=1, bottom=0, top=0.95 if title else 1,
                        hspace=0.05, wspace=0.05)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(np.asarray(images[i]).reshape(IMAGE_SIDE, IMAGE_SIDE), cmap="gray",
                  vmin=0, vmax=255)
        # imshow puts pixel i's centre at i; Kaggle's coordinates put it at i + PIXEL_ORIGIN
        points = np.asarray(keypoints[i], dtype=float) - PIXEL_ORIGIN
        ax.scatter(points[0::2], points[1::2], marker="x", s=12, c="red")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def grid_heatmap(lrs, momenta, rmse, path, title="") -> Path:
    """Mean CV RMSE (px) for each learning rate (rows) x momentum (columns)."""
    rmse = np.asarray(rmse, dtype=float)
    fig, ax = plt.subplots(figsize=(1.4 * len(momenta) + 2.5, 0.8 * len(lrs) + 2))
    image = ax.imshow(rmse, cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(len(momenta)), [f"{m:g}" for m in momenta])
    ax.set_yticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
    ax.set_xlabel("momentum")
    ax.set_ylabel("learning rate")
    finite = rmse[np.isfinite(rmse)]
    middle = finite.mean() if finite.size else 0
    for (i, j), value in np.ndenumerate(rmse):
        ax.text(j, i, f"{value:.3f}", ha="center", va="center",
                color="white" if value > middle else "black")
    fig.colorbar(image, ax=ax, label="mean RMSE (px)")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def lr_range_plot(lrs, losses, smoothed, path, suggested=None, configured=None, title="") -> Path:
    """The learning-rate range test: training loss per batch against its lr (log x axis),
    raw and smoothed, with the suggested and the configured lr marked."""
    lrs = np.asarray(lrs, dtype=float)
    losses = np.asarray(losses, dtype=float)
    smoothed = np.asarray(smoothed, dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(lrs, losses, lw=1, color="C0", alpha=0.35, label="batch loss")
    ax.plot(lrs, smoothed, lw=2, color="C0", label="smoothed")
    if suggested is not None:
        ax.axvline(suggested, color="C2", ls="--", label=f"suggested {suggested:.2g}")
    if configured is not None:
        ax.axvline(configured, color="C3", ls=":", label=f"configured {configured:.2g}")
    ax.set_xscale("log")
    finite = smoothed[np.isfinite(smoothed)]
    if finite.size:  # the divergence at the end would squash the interesting part
        low, high = finite.min(), min(finite.max(), 4 * finite[0])
        margin = 0.05 * (high - low) or 0.05 * abs(low) or 1.0
        ax.set_ylim(low - margin, high + margin)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (MSE, unit scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return _save(fig, path)
