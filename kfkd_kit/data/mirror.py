"""The labels' mirror axis, measured from the training images and their keypoints.

Flip augmentation and flip TTA pair an image with its mirror (columns reversed) and the
keypoints with mirrored keypoints, x -> 2a - x. Reversing the columns mirrors the *pixels*
about the image's centre (``keypoints.image_axis(origin)``: 48 in continuous coordinates,
origin 0.5; 48.5 for 1-based pixel centres); where the *labels* mirror depends
on where the annotators (or their tool) put a keypoint relative to the pixels it marks, a
constant offset that differs between data sets. A wrong axis teaches a flip-trained net half
its labels shifted by twice the error, and it predicts x about that error off.

How it is measured: a face is close to left-right symmetric, so for the right axis ``a``
each training face, reflected about the line its labels put ``a`` at, lies on itself.
``estimate_flip_axis`` tries candidate axes ``a`` (every 1/2 px within 3 px of the image's
axis, then every 1/10 px near the best) and for each one, per image:

1. takes the labels' midline: the mean x of the labelled keypoints that lie on it (nose tip,
   lip centres) and of both keypoints of every labelled left/right pair (eye centres, mouth
   corners, ...), so each labelled x value that flip augmentation mirrors counts once;
2. puts the face's own mirror line where the candidate says, ``a - image axis`` to the left
   of that midline, and compares the face region (the rows its keypoints span, +-8 px, and
   the columns within 24 px of that line, so the window is symmetric about it) with its
   reflection about the line (pixels read between columns by linear interpolation).

The mismatch summed over the images is one curve over the candidates; its minimum (a
parabola through the best three) is the axis. The window follows the candidate, and the
candidates are offsets from the image's axis, so the result does not depend on the pixel
convention the labels are declared in: the same labels measure the same axis under any
``origin``. (A first version searched each image separately, in a window centred on the
labels' midline, and took the median: the window pulled every image's answer towards the
declared convention's image axis, 48.44 px on faces15 declared continuous and 48.68 declared
1-based, where nets trained without flips put it at 48.70-48.76; docs/RESULTS.md.)

It uses the pixels and the labels only, no trained model, so it costs a few seconds (at most
2500 images are compared) and can be checked on its own: synthetic faces written with a
planted axis come back within 0.1 px (tests/data/test_mirror.py).
"""
from __future__ import annotations

import numpy as np

from ..keypoints import (DEFAULT_PIXEL_ORIGIN, FEATURE_INDEX, IMAGE_SIDE, KEYPOINT_FLIP_PAIRS,
                         N_TARGETS, image_axis)

MIDLINE_KEYPOINTS = ("nose_tip", "mouth_center_top_lip", "mouth_center_bottom_lip")
SEARCH_PX = 3.0        # candidate axes within +-3 px of the image's axis, every 1/2 px ...
STEP_PX = 0.5
FINE_STEP_PX = 0.1     # ... then every 1/10 px within 1/2 px of the best of those
HALF_WIDTH_PX = 24     # columns compared: within 24 px of the face's mirror line
MARGIN_PX = 8          # rows compared: the keypoints' rows +- 8 px
MAX_ROWS = 2500        # more images than this: an evenly spaced subset
CHUNK_ROWS = 256       # images compared at once (memory)


def label_midlines(y, columns=None) -> np.ndarray:
    """Per row, the labels' midline x (NaN where no pair and no midline keypoint is labelled)."""
    y = np.asarray(y, dtype=np.float64)
    columns = list(range(N_TARGETS)) if columns is None else list(columns)
    where = {c: i for i, c in enumerate(columns)}
    pairs = [(where[FEATURE_INDEX[f"{l}_x"]], where[FEATURE_INDEX[f"{r}_x"]])
             for l, r in KEYPOINT_FLIP_PAIRS
             if FEATURE_INDEX[f"{l}_x"] in where and FEATURE_INDEX[f"{r}_x"] in where]
    singles = [where[FEATURE_INDEX[f"{k}_x"]] for k in MIDLINE_KEYPOINTS
               if FEATURE_INDEX[f"{k}_x"] in where]
    # every labelled x whose mirror image is labelled too counts once: a pair's two values
    # give its midpoint, a midline keypoint its own x
    values = [y[:, a] for a, b in pairs] + [y[:, b] for a, b in pairs] + [y[:, i] for i in singles]
    paired = [np.isfinite(y[:, a]) & np.isfinite(y[:, b]) for a, b in pairs]
    usable = paired + paired + [np.isfinite(y[:, i]) for i in singles]
    if not values:
        return np.full(len(y), np.nan)
    values, usable = np.stack(values, 1), np.stack(usable, 1)
    count = usable.sum(1)
    total = np.where(usable, values, 0.0).sum(1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _row_span(y, columns):
    """Per row, the smallest and largest labelled y (NaN where none)."""
    y = np.asarray(y, dtype=np.float64)
    columns = list(range(N_TARGETS)) if columns is None else list(columns)
    ys = [i for i, c in enumerate(columns) if c % 2 == 1]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmin(y[:, ys], 1), np.nanmax(y[:, ys], 1)


class _Faces:
    """The measurable rows of (X, y) as torch tensors: images, labels' midline, face rows."""

    def __init__(self, X, y, columns, origin):
        import torch

        midline = label_midlines(y, columns)
        top, bottom = _row_span(y, columns)
        rows = np.flatnonzero(np.isfinite(midline) & np.isfinite(top))
        if len(rows) > MAX_ROWS:
            rows = rows[np.linspace(0, len(rows) - 1, MAX_ROWS).round().astype(int)]
        self.n = len(rows)
        self.origin = float(origin)
        self.coords = torch.arange(IMAGE_SIDE, dtype=torch.float32) + self.origin
        self.chunks = []
        for start in range(0, len(rows), CHUNK_ROWS):
            chunk = rows[start:start + CHUNK_ROWS]
            top_, bottom_ = (torch.as_tensor(v[chunk], dtype=torch.float32)[:, None]
                             for v in (top, bottom))
            face_rows = ((self.coords[None] >= top_ - MARGIN_PX)
                         & (self.coords[None] <= bottom_ + MARGIN_PX))
            images = torch.as_tensor(np.asarray(X)[chunk], dtype=torch.float32)
            self.chunks.append((images.reshape(len(chunk), IMAGE_SIDE, IMAGE_SIDE),
                                torch.as_tensor(midline[chunk], dtype=torch.float32), face_rows))

    def mismatch(self, shift) -> float:
        """The faces' summed mean squared mismatch with their reflections about the lines
        ``shift`` px left of their labels' midlines."""
        total, coords, side = 0.0, self.coords, IMAGE_SIDE
        for images, midline, face_rows in self.chunks:
            line = midline - float(shift)
            source = 2 * line[:, None] - coords[None] - self.origin    # column read, fractional
            inside = (source >= 0) & (source <= side - 1)
            window = (coords[None] - line[:, None]).abs() <= HALF_WIDTH_PX
            left = source.floor().clamp(0, side - 2)
            weight = (source - left).clamp(0, 1)[:, None, :]
            left = left.long()[:, None, :].expand(-1, side, -1)
            reflected = images.gather(2, left) * (1 - weight) + images.gather(2, left + 1) * weight
            mask = (face_rows[:, :, None] & (window & inside)[:, None, :]).float()
            per_image = ((images - reflected) ** 2 * mask).sum((1, 2)) / mask.sum((1, 2)).clamp(min=1)
            total += float(per_image.double().sum())
        return total


def _parabola_minimum(candidates, errors) -> float:
    """The candidate with the least error, refined by a parabola through it and its two
    neighbours (the nearest inner candidate's when the least is at an end)."""
    k = min(max(int(np.argmin(errors)), 1), len(errors) - 2)
    e0, e1, e2 = errors[k - 1], errors[k], errors[k + 1]
    curvature = e0 - 2 * e1 + e2
    step = candidates[k + 1] - candidates[k]
    shift = 0.5 * (e0 - e2) / curvature if curvature > 0 else 0.0
    return float(candidates[k] + np.clip(shift, -1.0, 1.0) * step)


def estimate_flip_axis(X, y, columns=None, origin=DEFAULT_PIXEL_ORIGIN) -> float:
    """The labels' mirror axis ``a`` (x -> 2a - x) measured from images ``X`` (n, 9216; any
    scale) and keypoints ``y`` (n, k) in pixels of pixel origin ``origin``, NaN where
    missing, whose k columns are ``columns`` of Kaggle's 30 (default all). The image's axis
    (``keypoints.image_axis(origin)``) when no row can be measured, or when it is not known
    which keypoints y's columns are (k != 30, no ``columns``)."""
    n_columns = N_TARGETS if columns is None else len(columns)
    centre = image_axis(origin)
    if np.ndim(y) != 2 or np.shape(y)[1] != n_columns:
        return centre
    faces = _Faces(X, y, columns, origin)
    if not faces.n:
        return centre
    coarse = np.arange(-SEARCH_PX, SEARCH_PX + STEP_PX / 2, STEP_PX)
    best = coarse[int(np.argmin([faces.mismatch(c) for c in coarse]))]
    fine = best + np.arange(-STEP_PX, STEP_PX + FINE_STEP_PX / 2, FINE_STEP_PX)
    offset = _parabola_minimum(fine, np.array([faces.mismatch(c) for c in fine]))
    return float(centre + np.clip(offset, -SEARCH_PX, SEARCH_PX))


# a net whose own training rows it misses by more than this has biases of its own as large
# as an axis correction: its predictions are not used to refine the axis
MAX_RMSE_TO_REFINE_PX = 2.5


def flip_consistent_axis(direct, mirrored, y, columns=None) -> tuple[float, float]:
    """(a, rmse): the axis ``a`` that makes flip TTA unbiased on these rows, and the RMSE
    (px) of ``direct`` against ``y`` over the labelled values.

    ``direct`` are a fitted net's predictions for images, ``mirrored`` its raw predictions
    for the mirrored images, ``y`` the labels, all (n, k) in pixels whose k columns are
    ``columns`` of Kaggle's 30. Flip TTA predicts x as (direct + 2a - mirrored')/2, where
    mirrored' is the x the net gave the keypoint's mirror partner on the mirrored image; its
    mean error over the labelled x values is zero for a = mean(mirrored' + 2 y - direct)/2.
    For a net trained with flips about an axis a0 this is a0 minus the net's bias in x on
    these rows; for one trained without flips, the axis its own mirrored answers imply.
    NaN when no x value is labelled.
    """
    from ..keypoints import mirror_targets
    direct, mirrored, y = (np.asarray(a, dtype=np.float64) for a in (direct, mirrored, y))
    columns = list(range(N_TARGETS)) if columns is None else list(columns)
    labelled = np.isfinite(y)
    error = np.where(labelled, direct - y, 0.0)
    rmse = float(np.sqrt((error ** 2).sum() / max(labelled.sum(), 1)))
    if y.ndim != 2 or y.shape[1] != len(columns):   # which keypoints the columns are is unknown
        return float("nan"), rmse
    xs = [i for i, c in enumerate(columns) if c % 2 == 0]
    partner = -mirror_targets(mirrored, columns, axis=0.0)   # x columns: the partner's raw x
    values = (partner[:, xs] + 2 * y[:, xs] - direct[:, xs]) / 2
    values = values[np.isfinite(values)]
    return (float(values.mean()) if len(values) else float("nan")), rmse
