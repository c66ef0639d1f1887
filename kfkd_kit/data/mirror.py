"""The labels' mirror axis, measured from the training images and their keypoints.

Flip augmentation and flip TTA pair an image with its mirror (columns reversed) and the
keypoints with mirrored keypoints, x -> 2a - x. Reversing the columns mirrors the *pixels*
about the image's centre (``keypoints.image_axis(origin)``: 48 in continuous coordinates,
origin 0.5; 48.5 for 1-based pixel centres); where the *labels* mirror depends
on where the annotators (or their tool) put a keypoint relative to the pixels it marks, a
constant offset that differs between data sets. A wrong axis teaches a flip-trained net half
its labels shifted by twice the error, and it predicts x about that error off.

How it is measured: a face is close to left-right symmetric. For each training image,
``estimate_flip_axis``

1. takes the labels' midline: the mean x of the labelled keypoints that lie on it (nose tip,
   lip centres) and of both keypoints of every labelled left/right pair (eye centres, mouth
   corners, ...), so each labelled x value that flip augmentation mirrors counts once;
2. finds the image's own axis of symmetry near it: the vertical line about which the face
   region (the rows its keypoints span, +-8 px, and the columns within 24 px of the
   midline) best matches its reflection, by least squares over candidate axes 1/2 px apart
   (pixels read between columns by linear interpolation) and a parabola through the best
   three;
3. keeps the difference, labels' midline minus image axis.

The axis is the image's centre plus the median difference over the images (robust to faces
turned aside and to images whose best match lies at the edge of the search, which are
left out). It uses the pixels and the labels only, no trained model, so it costs a couple
of seconds (at most 2500 images are compared) and can be checked on its own: synthetic
faces written with a planted axis come back within 0.1 px (tests/data/test_mirror.py).
"""
from __future__ import annotations

import numpy as np

from ..keypoints import (DEFAULT_PIXEL_ORIGIN, FEATURE_INDEX, IMAGE_SIDE, KEYPOINT_FLIP_PAIRS,
                         N_TARGETS, image_axis)

MIDLINE_KEYPOINTS = ("nose_tip", "mouth_center_top_lip", "mouth_center_bottom_lip")
SEARCH_PX = 3.0        # candidate axes within +-3 px of the labels' midline ...
STEP_PX = 0.5          # ... every 1/2 px (a parabola through the best three refines it)
HALF_WIDTH_PX = 24     # columns compared: within 24 px of the midline
MARGIN_PX = 8          # rows compared: the keypoints' rows +- 8 px
MAX_ROWS = 2500        # more images than this: an evenly spaced subset (the median is settled)


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


def image_axis_offsets(X, y, columns=None, origin=DEFAULT_PIXEL_ORIGIN) -> np.ndarray:
    """Per usable row, the labels' midline minus the image's own axis of symmetry (pixels),
    for labels of pixel origin ``origin`` (keypoints.py)."""
    import torch

    X = np.asarray(X)
    midline = label_midlines(y, columns)
    top, bottom = _row_span(y, columns)
    rows = np.flatnonzero(np.isfinite(midline) & np.isfinite(top))
    if len(rows) > MAX_ROWS:
        rows = rows[np.linspace(0, len(rows) - 1, MAX_ROWS).round().astype(int)]
    if not len(rows):
        return np.zeros(0)
    offsets = torch.arange(-SEARCH_PX, SEARCH_PX + STEP_PX / 2, STEP_PX, dtype=torch.float32)
    side = IMAGE_SIDE
    coords = torch.arange(side, dtype=torch.float32) + origin   # x (or y) of each pixel
    found = []
    for start in range(0, len(rows), 256):
        chunk = rows[start:start + 256]
        images = torch.as_tensor(X[chunk].reshape(len(chunk), side, side), dtype=torch.float32)
        centre = torch.as_tensor(midline[chunk], dtype=torch.float32)
        row_mask = ((coords[None] >= torch.as_tensor(top[chunk], dtype=torch.float32)[:, None] - MARGIN_PX)
                    & (coords[None] <= torch.as_tensor(bottom[chunk], dtype=torch.float32)[:, None] + MARGIN_PX))
        col_mask = (coords[None] - centre[:, None]).abs() <= HALF_WIDTH_PX
        errors = []
        for offset in offsets:
            axis = centre + offset
            source = 2 * axis[:, None] - coords[None] - origin        # column read, fractional
            inside = (source >= 0) & (source <= side - 1)
            left = source.floor().clamp(0, side - 2)
            weight = (source - left).clamp(0, 1)[:, None, :]
            left = left.long()[:, None, :].expand(-1, side, -1)
            reflected = (images.gather(2, left) * (1 - weight)
                         + images.gather(2, left + 1) * weight)
            mask = (row_mask[:, :, None] & (col_mask & inside)[:, None, :]).float()
            errors.append(((images - reflected) ** 2 * mask).sum((1, 2)) / mask.sum((1, 2)).clamp(min=1))
        errors = torch.stack(errors, 1).double().numpy()
        best = errors.argmin(1)
        interior = (best > 0) & (best < len(offsets) - 1)
        k = np.clip(best, 1, len(offsets) - 2)
        at = np.arange(len(k))
        e0, e1, e2 = errors[at, k - 1], errors[at, k], errors[at, k + 1]
        curvature = e0 - 2 * e1 + e2
        shift = np.where(curvature > 0, 0.5 * (e0 - e2) / np.where(curvature > 0, curvature, 1), 0.0)
        image_axis = offsets.numpy()[k] + np.clip(shift, -0.5, 0.5) * STEP_PX
        found.append(-image_axis[interior])   # midline - image axis = -(image axis - midline)
    return np.concatenate(found)


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
    differences = image_axis_offsets(X, y, columns, origin)
    if not len(differences):
        return centre
    return float(centre + np.median(differences))


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
