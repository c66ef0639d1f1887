"""The audit's label checks against out-of-fold predictions (``make audit OOF=``): each
labelled value against what a net that never saw its row predicts for it (``make cv``'s
``cv/oof-<run>.csv``). Pure numpy on (labels, predictions), both (n, 30) px in Kaggle's
column order, labels NaN where missing; audit.py runs them when given the predictions.

    oof_checks(y, predictions)   -> OOFChecks   everything below
    residual_spread(residual)    -> (center, spread)   per keypoint, robust
    oof_swaps(y, predictions)    -> [dict]      left/right pairs that fit the prediction
                                                clearly better exchanged
    residual_outliers(y, pred)   -> [dict], table   keypoints far from their prediction

**Residual** of a labelled keypoint: label − out-of-fold prediction, (dx, dy) px. Per keypoint,
its **center** is the median residual (the net's bias there, removed) and its **spread** the
robust standard deviation of one coordinate, 1.4826·MAD of dx and of dy, their root mean
square (over the rows that label the keypoint; the median over all keypoints where fewer than
``MIN_LABELLED`` do). For residuals that are normal with that spread, the distance from the
center over the spread has a Rayleigh law: above 4 with probability exp(−8) ≈ 3·10⁻⁴.

**Residual outlier**: distance from the center > max(``RESIDUAL_MIN_PX``, ``RESIDUAL_Z`` ×
spread), computed after the flagged swaps below are undone.

**Swapped pair**: both keypoints of a left/right pair labelled, and the two labels exchanged
fit the predictions (sum of squared distances) below ``SWAP_RATIO`` of the labels as written
and by ``SWAP_MIN_PX2`` px² at least.

**Cleaning** (audit.clean_changes, with the audit's own geometry checks): a residual outlier
is set to missing where the geometry check (label_checks.geometry_outliers) flags the same
keypoint too, or where the residual rule alone flags it beyond the stricter
``CLEAN_Z`` × spread and ``CLEAN_MIN_PX``; a pair is swapped where the geometry check swaps
it too, or where the exchanged labels fit below ``CLEAN_SWAP_RATIO``. Anything else is only
reported: a net's prediction is evidence, not ground truth, and a hard face it predicts
badly must not lose its labels.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..keypoints import KEYPOINTS, N_TARGETS
from .label_checks import _K, _PAIRS, apply_swaps   # the keypoint-index pairs, defined once

__all__ = ["OOFChecks", "oof_checks", "residual_spread", "oof_swaps", "residual_outliers",
           "cleaned_by_residual", "swapped_by_residual"]

# thresholds, each beside what it measures
MAD_TO_SD = 1.4826       # a normal law's standard deviation per median absolute deviation
MIN_LABELLED = 10        # a keypoint's spread from its own residuals when this many rows label it
SPREAD_FLOOR_PX = 0.25   # no spread below this (a net that predicts its labels exactly)
RESIDUAL_Z = 4.0         # residual outlier: distance from the center beyond this x the spread
RESIDUAL_MIN_PX = 4.0    # ... and beyond this many pixels
SWAP_RATIO = 0.25        # swapped: the exchanged labels' squared distance below this share
SWAP_MIN_PX2 = 32.0      # ... and smaller by this many px² at least (2 x RESIDUAL_MIN_PX²)
CLEAN_Z = 8.0            # cleaned on the residual alone: beyond this x the spread
CLEAN_MIN_PX = 8.0       # ... and this many pixels
CLEAN_SWAP_RATIO = 0.1   # swapped on the residual alone: the exchanged fit below this share


@dataclass
class OOFChecks:
    """What the out-of-fold checks found. ``outliers``: [{"row", "keypoint", "label_x",
    "label_y", "predicted_x", "predicted_y", "residual_px", "distance_px", "z"}] worst first;
    ``swapped``: [{"row", "keypoints": [left, right, ...], "sse", "sse_swapped", "ratio"}];
    ``keypoints``: one row per keypoint (labelled, center, spread, threshold, flagged);
    ``rmse_px``: the predictions' RMSE over the labelled values (swaps undone)."""
    run: str = ""
    outliers: list = field(default_factory=list)
    swapped: list = field(default_factory=list)
    keypoints: list = field(default_factory=list)
    rmse_px: float = float("nan")


def _check(y, predictions):
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(predictions, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != N_TARGETS:
        raise ValueError(f"expected labels of shape (n, {N_TARGETS}), got {y.shape}")
    if p.shape != y.shape:
        raise ValueError(f"out-of-fold predictions of shape {p.shape} for labels of shape "
                         f"{y.shape}: one prediction per training row and column expected")
    if not np.isfinite(p).all():
        row, column = np.argwhere(~np.isfinite(p))[0]
        raise ValueError(f"out-of-fold predictions: row {row}, column {column}: not a number")
    return y, p


def _points(y):
    """(n, 15, 2) and (n, 15) whether both coordinates are labelled."""
    pts = y.reshape(len(y), _K, 2)
    return pts, np.isfinite(pts).all(axis=2)


def residual_spread(residual, labelled) -> tuple[np.ndarray, np.ndarray]:
    """Per keypoint of ``residual`` (n, 15, 2) over ``labelled`` (n, 15): (center (15, 2),
    the median residual; spread (15,), the RMS over x and y of 1.4826·MAD, px)."""
    center = np.zeros((_K, 2))
    spread = np.full(_K, np.nan)
    for k in range(_K):
        r = residual[labelled[:, k], k]
        if len(r) == 0:
            continue
        center[k] = np.median(r, axis=0)
        if len(r) >= MIN_LABELLED:
            mad = MAD_TO_SD * np.median(np.abs(r - center[k]), axis=0)
            spread[k] = np.sqrt(np.mean(mad ** 2))
    pooled = np.nanmedian(spread) if np.isfinite(spread).any() else 1.0
    spread = np.where(np.isfinite(spread), spread, pooled)
    return center, np.maximum(spread, SPREAD_FLOOR_PX)


def oof_swaps(y, predictions) -> list:
    """Left/right pairs whose two labels, exchanged, fit the predictions clearly better
    (module docstring): [{"row", "keypoints": [left, right, ...], "sse", "sse_swapped",
    "ratio"}], one item per row with every such pair of it, sums over those pairs (px²)."""
    y, p = _check(y, predictions)
    pts, labelled = _points(y)
    pred = p.reshape(len(p), _K, 2)
    found = {}
    for a, b in _PAIRS:
        both = labelled[:, a] & labelled[:, b]
        with np.errstate(invalid="ignore"):
            sse = (((pts[:, a] - pred[:, a]) ** 2).sum(axis=1) +
                   ((pts[:, b] - pred[:, b]) ** 2).sum(axis=1))
            swapped = (((pts[:, b] - pred[:, a]) ** 2).sum(axis=1) +
                       ((pts[:, a] - pred[:, b]) ** 2).sum(axis=1))
        hit = both & (swapped < SWAP_RATIO * sse) & (sse - swapped > SWAP_MIN_PX2)
        for r in np.flatnonzero(hit):
            item = found.setdefault(int(r), {"row": int(r), "keypoints": [], "sse": 0.0,
                                             "sse_swapped": 0.0})
            item["keypoints"] += [KEYPOINTS[a], KEYPOINTS[b]]
            item["sse"] += float(sse[r])
            item["sse_swapped"] += float(swapped[r])
    out = [found[r] for r in sorted(found)]
    for item in out:
        item["ratio"] = item["sse_swapped"] / max(item["sse"], 1e-9)
    return out


def residual_outliers(y, predictions) -> tuple[list, list]:
    """Keypoints whose label is far from its out-of-fold prediction (module docstring), on
    ``y`` as given: ([{"row", "keypoint", ...}] worst first by ``z``, [one dict per keypoint:
    "keypoint", "labelled", "center_x_px", "center_y_px", "spread_px", "threshold_px",
    "flagged"])."""
    y, p = _check(y, predictions)
    pts, labelled = _points(y)
    pred = p.reshape(len(p), _K, 2)
    residual = np.where(labelled[..., None], pts - pred, np.nan)
    center, spread = residual_spread(residual, labelled)
    distance = np.sqrt(((residual - center) ** 2).sum(axis=2))          # (n, 15), NaN unlabelled
    threshold = np.maximum(RESIDUAL_MIN_PX, RESIDUAL_Z * spread)
    with np.errstate(invalid="ignore"):
        hit = labelled & (distance > threshold)
    out = []
    for r, k in zip(*np.nonzero(hit)):
        out.append({"row": int(r), "keypoint": KEYPOINTS[k],
                    "label_x": float(pts[r, k, 0]), "label_y": float(pts[r, k, 1]),
                    "predicted_x": float(pred[r, k, 0]), "predicted_y": float(pred[r, k, 1]),
                    "residual_px": float(np.hypot(*(pts[r, k] - pred[r, k]))),
                    "distance_px": float(distance[r, k]), "z": float(distance[r, k] / spread[k])})
    out.sort(key=lambda o: (-o["z"], o["row"], KEYPOINTS.index(o["keypoint"])))
    table = [{"keypoint": KEYPOINTS[k], "labelled": int(labelled[:, k].sum()),
              "center_x_px": float(center[k, 0]), "center_y_px": float(center[k, 1]),
              "spread_px": float(spread[k]), "threshold_px": float(threshold[k]),
              "flagged": int(hit[:, k].sum())} for k in range(_K)]
    return out, table


def oof_checks(y, predictions, run="") -> OOFChecks:
    """Both checks: swapped pairs on the labels as written, then residual outliers on the
    labels with those pairs exchanged back. Deterministic."""
    y, p = _check(y, predictions)
    swapped = oof_swaps(y, p)
    fixed = apply_swaps(y, swapped)
    outliers, table = residual_outliers(fixed, p)
    labelled = np.isfinite(fixed)
    rmse = float(np.sqrt(np.mean((fixed[labelled] - p[labelled]) ** 2))) if labelled.any() \
        else float("nan")
    return OOFChecks(run=run, outliers=outliers, swapped=swapped, keypoints=table, rmse_px=rmse)


def cleaned_by_residual(item) -> bool:
    """Whether a residual outlier alone is far enough to empty in the cleaned file."""
    return item["z"] > CLEAN_Z and item["distance_px"] > CLEAN_MIN_PX


def swapped_by_residual(item) -> bool:
    """Whether a pair swapped by the residual alone is clear enough to swap in the cleaned
    file."""
    return item["ratio"] < CLEAN_SWAP_RATIO
