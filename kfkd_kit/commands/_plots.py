"""PNG figures: learning curves, a grid of predicted keypoints, a grid-search heatmap, the
error report's RMSE per keypoint and worst-predicted faces, the learning-rate range test."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..utils.atomic import save_figure  # noqa: E402
from ..keypoints import DEFAULT_PIXEL_ORIGIN, IMAGE_SIDE  # noqa: E402


def _save(fig, path) -> Path:
    """Save atomically (atomic.save_figure), into a folder made if missing; close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return save_figure(fig, path)
    finally:
        plt.close(fig)


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


def _face_grid(images, title, height=8, hspace=0.05, top=1.0):
    """A 4x4 figure showing the first 16 images; returns (figure, the axes drawn on)."""
    n = min(16, len(images))
    fig, axes = plt.subplots(4, 4, figsize=(8, height))
    fig.subplots_adjust(left=0, right=1, bottom=0, top=top, hspace=hspace, wspace=0.05)
    for ax in axes.flat:
        ax.set_axis_off()
    for i, ax in enumerate(axes.flat[:n]):
        ax.imshow(np.asarray(images[i]).reshape(IMAGE_SIDE, IMAGE_SIDE), cmap="gray",
                  vmin=0, vmax=255)
    if title:
        fig.suptitle(title)
    return fig, list(axes.flat[:n])


def _on_image(keypoints, origin) -> np.ndarray:
    """The labels' pixels -> imshow's: imshow puts pixel i's centre at i, labels of pixel
    origin ``origin`` at i + origin (keypoints.py)."""
    return np.asarray(keypoints, dtype=float) - float(origin)


def prediction_grid(images, keypoints, path, title="", origin=DEFAULT_PIXEL_ORIGIN) -> Path:
    """A 4x4 grid of the first 16 images with predicted keypoints (pixels, labels of pixel
    origin ``origin``) drawn on them."""
    fig, axes = _face_grid(images, title, top=0.95 if title else 1)
    for i, ax in enumerate(axes):
        points = _on_image(keypoints[i], origin)
        ax.scatter(points[0::2], points[1::2], marker="x", s=12, c="red")
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


def keypoint_rmse_bars(names, rmse_x, rmse_y, rmse, path, title="") -> Path:
    """RMSE px per keypoint: x, y and both together, one group of bars per keypoint."""
    names = list(names)
    at = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7, 0.38 * len(names) + 1.4))
    height = 0.27
    for offset, values, label, colour in ((-height, rmse, "x and y", "0.35"),
                                          (0, rmse_x, "x", "C0"), (height, rmse_y, "y", "C1")):
        ax.barh(at + offset, np.asarray(values, dtype=float), height, label=label, color=colour)
    ax.set_yticks(at, [n.replace("_", " ") for n in names], fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel("RMSE (px)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize="small", loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3,
              frameon=False)
    if title:
        ax.set_title(title, fontsize="medium", pad=22)
    return _save(fig, path)


def worst_faces_grid(images, true, predicted, path, labels=(), title="",
                     origin=DEFAULT_PIXEL_ORIGIN) -> Path:
    """A 4x4 grid of faces with their true keypoints (green dots) and predicted ones (red
    crosses), each pair joined by a line; ``labels`` captions the faces. Pixels in labels of
    pixel origin ``origin``, drawn as ``prediction_grid`` draws them."""
    fig, axes = _face_grid(images, title and title + "  (green: true, red: predicted)",
                           height=8.6, hspace=0.15, top=0.93 if title else 0.97)
    for i, ax in enumerate(axes):
        t, p = _on_image(true[i], origin), _on_image(predicted[i], origin)
        for k in range(0, len(t), 2):
            if np.isfinite(t[k]) and np.isfinite(t[k + 1]):
                ax.plot([t[k], p[k]], [t[k + 1], p[k + 1]], color="yellow", lw=0.7)
        ax.scatter(t[0::2], t[1::2], marker="o", s=10, c="#1a9e1a")
        ax.scatter(p[0::2], p[1::2], marker="x", s=14, c="#d62728")
        ax.set_xlim(-0.5, IMAGE_SIDE - 0.5)
        ax.set_ylim(IMAGE_SIDE - 0.5, -0.5)
        if i < len(labels):
            ax.set_title(labels[i], fontsize="small", pad=2)
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


def face_table(cells, path, columns=4, title="", origin=DEFAULT_PIXEL_ORIGIN) -> Path:
    """Faces in rows of ``columns``: each cell None (left empty) or (image, keypoints px,
    caption, marked keypoint indices drawn in red, the others green[, predicted keypoints
    px, drawn as blue crosses joined to the labels]), pixels in labels of pixel origin
    ``origin``. The audit's page: a duplicate group on one row, a flagged face in each cell."""
    rows = max(1, -(-len(cells) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2.15 * rows + (0.4 if title else 0)),
                             squeeze=False)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1 - (0.35 / (2.15 * rows + 0.4) if title else 0),
                        hspace=0.2, wspace=0.05)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, cell in zip(axes.flat, cells):
        if cell is None:
            continue
        image, keypoints, caption, marked, *predicted = cell
        ax.imshow(np.asarray(image).reshape(IMAGE_SIDE, IMAGE_SIDE), cmap="gray", vmin=0, vmax=255)
        if keypoints is not None:
            points = _on_image(keypoints, origin).reshape(-1, 2)
            red = np.zeros(len(points), dtype=bool)
            red[list(marked or [])] = True
            ax.scatter(points[~red, 0], points[~red, 1], marker="o", s=9, c="#1a9e1a")
            ax.scatter(points[red, 0], points[red, 1], marker="x", s=30, c="#d62728")
            if predicted and predicted[0] is not None:
                guess = _on_image(predicted[0], origin).reshape(-1, 2)
                for (x0, y0), (x1, y1) in zip(points, guess):
                    if np.isfinite(x0) and np.isfinite(y0):
                        ax.plot([x0, x1], [y0, y1], color="yellow", lw=0.7)
                ax.scatter(guess[:, 0], guess[:, 1], marker="+", s=16, c="#1f5fd6")
        ax.set_xlim(-0.5, IMAGE_SIDE - 0.5)
        ax.set_ylim(IMAGE_SIDE - 0.5, -0.5)
        ax.set_title(caption, fontsize="x-small", pad=2)
    if title:
        fig.suptitle(title, fontsize="small")
    return _save(fig, path)
