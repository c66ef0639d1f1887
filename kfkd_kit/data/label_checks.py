"""The audit's label checks (audit.py runs them all), on labels alone: each row fitted to
the robust mean shape by a similarity (rotation, uniform scale, shift; no reflection), then
left/right pairs that fit clearly better swapped, keypoints far from where the rest of the
face puts them, points outside the image, and the rows' labelling groups compared on the
keypoints they share."""
from __future__ import annotations

import numpy as np

from ..keypoints import DEFAULT_PIXEL_ORIGIN, IMAGE_SIDE, KEYPOINT_FLIP_PAIRS, KEYPOINTS, frame

# thresholds, each beside what it measures
SWAP_RATIO = 0.25       # swapped: the swapped fit's squared residual below this share
SWAP_MIN = 4.0          # ... and better by this many squared mean-shape pixels at least
OUTLIER_QUANTILE = 0.95 # geometry outlier: a keypoint's typical leave-one-out residual
OUTLIER_RATIO = 1.7     # ... exceeded this many times
OUTLIER_MIN = 4.0       # ... and at least this far, in mean-shape pixels
OUTLIER_ROUNDS = 3      # flagged one at a time per row, worst first, up to this many
GROUP_MIN_ROWS = 10     # labelling groups smaller than this are counted, not compared
BIAS_Z = 3.0            # a shared keypoint's mean differs: |difference| > this x its SE

_K = len(KEYPOINTS)
_PAIRS = [(KEYPOINTS.index(a), KEYPOINTS.index(b)) for a, b in KEYPOINT_FLIP_PAIRS]


# --------------------------------------------------------------------------- alignment

def _complex(y) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return y[..., 0::2] + 1j * y[..., 1::2]


def _fit(points, shape, weight):
    """Similarity maps shape -> points per row (least squares over ``weight``ed keypoints):
    (z, t) complex with points ~ z * shape + t. Rows with under two points get z = t = NaN."""
    w = weight.astype(np.float64)
    p = np.where(weight, points, 0)
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu_s = (w * shape).sum(axis=1) / total
        mu_p = (w * p).sum(axis=1) / total
        s = shape - mu_s[:, None]
        d = p - mu_p[:, None]
        z = (w * np.conj(s) * d).sum(axis=1) / (w * np.abs(s) ** 2).sum(axis=1)
        t = mu_p - z * mu_s
    bad = total < 2
    z[bad] = np.nan
    t[bad] = np.nan
    return z, t


def _in_shape_frame(points, shape, weight):
    """Each row's points mapped into the mean shape's frame by its own fit: (n, 15) complex."""
    z, t = _fit(points, np.broadcast_to(shape, points.shape), weight)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (points - t[:, None]) / z[:, None]


def mean_shape(y, rounds=3) -> np.ndarray:
    """The robust mean layout: per keypoint the median of the labelled rows' points after
    each row is aligned to the current layout (started from the column medians).
    (15, 2) float64, x then y, in pixels of a 96x96 image."""
    points = _complex(y)
    weight = np.isfinite(points)
    if (weight.sum(axis=0) == 0).any():
        raise ValueError("the mean shape needs every keypoint labelled on some row")
    shape = np.nanmedian(points.real, axis=0) + 1j * np.nanmedian(points.imag, axis=0)
    for _ in range(rounds):
        aligned = _in_shape_frame(points, shape, weight)
        ok = weight & np.isfinite(aligned)
        re = np.where(ok, aligned.real, np.nan)
        im = np.where(ok, aligned.imag, np.nan)
        new = np.nanmedian(re, axis=0) + 1j * np.nanmedian(im, axis=0)
        # keep the layout's size and place those of the column medians
        z, t = _fit(new[None], (np.nanmedian(points.real, axis=0) +
                                1j * np.nanmedian(points.imag, axis=0))[None], np.ones((1, _K), bool))
        shape = (new - t[0]) / z[0]
    return np.stack([shape.real, shape.imag], axis=1)


def _sse(points, shape, weight):
    z, t = _fit(points, np.broadcast_to(shape, points.shape), weight)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(weight, (points - t[:, None]) / z[:, None] - shape, 0)
    return (np.abs(r) ** 2).sum(axis=1)


# --------------------------------------------------------------------------- labels

def swapped_pairs(y, shape, rows=None) -> list:
    """Left/right pairs whose fit to the mean shape is clearly better with the two points
    exchanged (also all labelled pairs at once: a wholly mirrored labelling).
    [{"row", "keypoints": (left, right, ...), "sse", "sse_swapped"}], in the shape's pixels."""
    points = _complex(y)
    weight = np.isfinite(points)
    shape_c = shape[:, 0] + 1j * shape[:, 1]
    rows = np.arange(len(points)) if rows is None else np.asarray(rows)
    points, weight = points[rows], weight[rows]
    base = _sse(points, shape_c, weight)
    candidates = [[pair] for pair in _PAIRS] + [_PAIRS]
    best = np.full(len(points), np.inf)
    choice = np.full(len(points), -1)
    for c, pairs in enumerate(candidates):
        swapped = points.copy()
        has = np.zeros(len(points), dtype=bool)
        for a, b in pairs:
            both = weight[:, a] & weight[:, b]
            has |= both
            swapped[both, a], swapped[both, b] = points[both, b], points[both, a]
        if len(pairs) > 1:   # all at once only where two pairs or more are labelled
            has = sum((weight[:, a] & weight[:, b]).astype(int) for a, b in pairs) >= 2
        sse = np.where(has, _sse(swapped, shape_c, weight), np.inf)
        better = sse < best
        best[better], choice[better] = sse[better], c
    flagged = (best < SWAP_RATIO * base) & (base - best > SWAP_MIN)
    out = []
    for i in np.flatnonzero(flagged):
        pairs = [(a, b) for a, b in candidates[choice[i]] if weight[i, a] and weight[i, b]]
        out.append({"row": int(rows[i]), "keypoints": [KEYPOINTS[k] for ab in pairs for k in ab],
                    "sse": float(base[i]), "sse_swapped": float(best[i])})
    return out


def apply_swaps(y, swapped) -> np.ndarray:
    """``y`` with the pairs of ``swapped_pairs`` exchanged (a copy)."""
    y = np.array(y, dtype=np.float64, copy=True)
    for item in swapped:
        names = item["keypoints"]
        for left, right in zip(names[0::2], names[1::2]):
            a, b = 2 * KEYPOINTS.index(left), 2 * KEYPOINTS.index(right)
            y[item["row"], [a, a + 1, b, b + 1]] = y[item["row"], [b, b + 1, a, a + 1]]
    return y


def _loo_residuals(points, shape_c, weight):
    """Leave each labelled point out in turn: ((n, 15) complex residual of the point against
    where the row's other points put it, (n, 15) the squared residual of those others), in
    the mean shape's frame; NaN and inf where fewer than three others are labelled."""
    out = np.full(points.shape, np.nan + 0j)
    rest = np.full(points.shape, np.inf)
    for j in range(_K):
        w = weight.copy()
        w[:, j] = False
        ok = weight[:, j] & (w.sum(axis=1) >= 3)
        if not ok.any():
            continue
        p, wk = points[ok], w[ok]
        z, t = _fit(p, np.broadcast_to(shape_c, p.shape), wk)
        mapped = (p - t[:, None]) / z[:, None]
        out[ok, j] = mapped[:, j] - shape_c[j]
        rest[ok, j] = (np.abs(np.where(wk, mapped - shape_c, 0)) ** 2).sum(axis=1)
    return out, rest


def _typical(distance, sizes) -> np.ndarray:
    """(n, 15): the OUTLIER_QUANTILE of each keypoint's residual distance over the rows that
    label as many points as the row does (pooled over all rows where under 30 do)."""
    pooled = np.nanquantile(np.where(np.isfinite(distance), distance, np.nan), OUTLIER_QUANTILE,
                            axis=0) if np.isfinite(distance).any() else np.ones(_K)
    pooled = np.nan_to_num(pooled, nan=1.0)
    out = np.broadcast_to(pooled, distance.shape).copy()
    for size in np.unique(sizes):
        rows = sizes == size
        if rows.sum() >= 30:
            with np.errstate(all="ignore"):
                import warnings
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    q = np.nanquantile(distance[rows], OUTLIER_QUANTILE, axis=0)
            out[rows] = np.where(np.isfinite(q), q, pooled)
    return np.maximum(out, 0.25)


def geometry_outliers(y, shape, rows=None) -> list:
    """Keypoints far from where the rest of their face puts them: the leave-one-out residual
    of each labelled point after a similarity fit of the others to the mean shape, against
    what is typical for that keypoint (its OUTLIER_QUANTILE over the rows that label as many
    points); flagged where it is OUTLIER_RATIO times that and OUTLIER_MIN pixels or more,
    one at a time per row, worst first, refitting without it.
    [{"row", "keypoint", "z", "distance"}]: ``z`` that ratio, ``distance`` in the mean
    shape's pixels."""
    points = _complex(y)
    weight = np.isfinite(points)
    shape_c = shape[:, 0] + 1j * shape[:, 1]
    rows = np.arange(len(points)) if rows is None else np.asarray(rows)
    points, weight = points[rows], weight[rows].copy()
    residual, rest = _loo_residuals(points, shape_c, weight)
    typical = _typical(np.abs(residual), weight.sum(axis=1))
    out = []
    at = np.arange(len(points))
    for _ in range(OUTLIER_ROUNDS):
        # the suspect: the point whose leaving out lets the others fit best
        worst = np.argmin(np.where(weight, rest, np.inf), axis=1)
        distance = np.abs(residual[at, worst])
        ratio = distance / typical[at, worst]
        hit = np.flatnonzero(weight[at, worst] & np.isfinite(distance) &
                             (ratio > OUTLIER_RATIO) & (distance > OUTLIER_MIN))
        if not len(hit):
            break
        for i in hit:
            out.append({"row": int(rows[i]), "keypoint": KEYPOINTS[worst[i]],
                        "z": float(ratio[i]), "distance": float(distance[i])})
        weight[hit, worst[hit]] = False
        residual = np.full(points.shape, np.nan + 0j)
        rest = np.full(points.shape, np.inf)
        residual[hit], rest[hit] = _loo_residuals(points[hit], shape_c, weight[hit])
    return sorted(out, key=lambda o: (o["row"], KEYPOINTS.index(o["keypoint"])))


def outside_points(y, origin=DEFAULT_PIXEL_ORIGIN) -> list:
    """Labelled keypoints outside the image's frame (``keypoints.frame(origin)``, for labels
    of pixel origin ``origin``)."""
    pts = np.asarray(y, dtype=np.float64).reshape(len(y), _K, 2)
    low, high = frame(origin)
    with np.errstate(invalid="ignore"):
        bad = ((pts < low) | (pts > high)).any(axis=2)
    return [{"row": int(r), "keypoint": KEYPOINTS[k]} for r, k in zip(*np.nonzero(bad))]


# --------------------------------------------------------------------------- labelling groups

def labelling_groups(y, shape=None, labelled=None) -> tuple[list, list]:
    """The rows grouped by which keypoints they label: [{"group", "keypoints", "rows",
    "count"}], largest first; and, for each group of GROUP_MIN_ROWS rows or more against
    the largest, each shared keypoint's mean difference (x and y, px) with its standard
    error, in the image and, with ``shape``, after each row's similarity alignment to it
    (geometry, not placement): [{"group", "versus", "keypoint", "axis", "diff_px", "se_px",
    "aligned_diff_px", "aligned_se_px", "differs"}]. ``labelled`` (n, 15): which keypoints
    each row labels, when ``y`` has had some cleared (default: those ``y`` has)."""
    y = np.asarray(y, dtype=np.float64)
    if labelled is None:
        labelled = np.isfinite(y[:, 0::2]) & np.isfinite(y[:, 1::2])
    patterns: dict[tuple, list] = {}
    for r, row in enumerate(labelled):
        patterns.setdefault(tuple(row), []).append(r)
    ordered = sorted(patterns.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    groups, seen = [], {}
    for pattern, rows in ordered:
        names = [KEYPOINTS[k] for k in range(_K) if pattern[k]]
        seen[len(names)] = seen.get(len(names), 0) + 1
        label = f"{len(names)}-point" + ("" if seen[len(names)] == 1 else f" ({seen[len(names)]})")
        groups.append({"group": label, "keypoints": names, "rows": rows, "count": len(rows)})
    aligned = None
    if shape is not None:
        points = _complex(y)
        a = _in_shape_frame(points, shape[:, 0] + 1j * shape[:, 1], np.isfinite(points))
        aligned = np.empty_like(y)
        aligned[:, 0::2], aligned[:, 1::2] = a.real, a.imag
    bias = []
    if not groups:
        return groups, bias
    ref = groups[0]
    for other in groups[1:]:
        if other["count"] < GROUP_MIN_ROWS or ref["count"] < GROUP_MIN_ROWS:
            continue
        shared = [k for k in ref["keypoints"] if k in other["keypoints"]]
        for name in shared:
            for axis, col in (("x", 2 * KEYPOINTS.index(name)), ("y", 2 * KEYPOINTS.index(name) + 1)):
                item = {"group": other["group"], "versus": ref["group"], "keypoint": name,
                        "axis": axis}
                for key, values in (("", y), ("aligned_", aligned)):
                    if values is None:
                        item[f"{key}diff_px"] = item[f"{key}se_px"] = float("nan")
                        continue
                    a, b = values[other["rows"], col], values[ref["rows"], col]
                    item[f"{key}diff_px"] = float(np.nanmean(a) - np.nanmean(b))
                    item[f"{key}se_px"] = float(np.sqrt(np.nanvar(a, ddof=1) / len(a) +
                                                        np.nanvar(b, ddof=1) / len(b)))
                item["differs"] = bool(abs(item["diff_px"]) > BIAS_Z * item["se_px"])
                bias.append(item)
    return groups, bias
