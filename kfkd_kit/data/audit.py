"""A data audit without a trained net: duplicate images, labels that look wrong, images with
no face, and the rows' labelling groups; and the cleaned copy of a training file.

    audit(X, y, X_test=None, ...)  -> Audit      every check below, on arrays
    exact_duplicates(X, X_test)    -> [Group]    identical pixels (splits.image_groups)
    near_duplicates(X, X_test)     -> [Group]    the same picture again, re-lit, noisier or
                                                 moved a pixel or two
    blank_images(X)                -> rows       near-constant images: no face to find
    mean_shape(y)                  -> (15, 2)    the robust mean layout after similarity alignment
    swapped_pairs(y, shape)        -> [dict]     left/right pairs that fit clearly better swapped
    geometry_outliers(y, shape)    -> [dict]     keypoints far from where the rest of the face
                                                 puts them (robust z-score, leave-one-out)
    labelling_groups(y)            -> groups, bias   which keypoints each row labels; whether
                                                 the groups differ on the keypoints they share
    clean_changes(audit, y)        -> [Change]   the conservative cleaning policy (below)
    write_clean(source, path, changes)           the training file with those changes, atomically

Alignment: each row's labelled points are fitted to the mean shape by a similarity (rotation,
uniform scale, shift; no reflection), least squares, all rows at once in complex numbers
(as photo/framing.fit_similarity does one at a time; the data layer sits below photo).
Residuals are measured in the mean shape's frame, so a face's size does not matter.

Cleaning policy (``clean_changes``), conservative: only what a check flags clearly.

* rows whose image is near-constant (no face) are dropped;
* exact duplicate images within the training file: the first row is kept, and each later
  copy whose labels agree with it (every keypoint labelled in both within ``AGREE_PX``) is
  merged into it (the keypoints only the copy labels are copied over, as written) and
  dropped; copies that disagree are kept, both, for the user to judge from the page;
* a left/right pair that fits clearly better swapped is swapped (its fields exchanged, as
  written);
* a keypoint flagged as a geometry outlier is set to missing (both its fields emptied);
* near duplicates are reported, never changed (they may be distinct crops of one photo).

The file is rewritten field by field from its own text: unchanged fields keep their exact
text, so a cleaned file reads back to the same numbers except where the log says.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..keypoints import (FEATURE_NAMES, FRAME, IMAGE_SIDE, KEYPOINT_FLIP_PAIRS, KEYPOINTS,
                         N_TARGETS)
from ..utils.atomic import atomic_write
from ..utils.progress import bar
from .splits import image_groups

__all__ = ["Audit", "Change", "audit", "exact_duplicates", "near_duplicates", "blank_images",
           "mean_shape", "swapped_pairs", "geometry_outliers", "labelling_groups",
           "clean_changes", "write_clean"]

# thresholds, each beside what it measures
AGREE_PX = 1.0          # duplicate rows agree when every shared keypoint is within this
NEAR_SIMILARITY = 0.99  # near duplicates: blurred, normalised correlation at the best shift
NEAR_CANDIDATE = 0.90   # ... of pairs whose coarse 12x12 thumbnails correlate this well
NEAR_NEIGHBOURS = 8     # ... among each image's closest thumbnails
NEAR_SHIFT = 2          # ... the shift searched, in pixels each way
BLANK_STD = 6.0         # no face: pixel standard deviation below this (grey levels)
BLANK_RANGE = 24.0      # ... or the 1st to 99th percentile spread below this
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


@dataclass
class Group:
    """Images that are one picture: ``rows`` of the training file, ``test`` rows of the test
    file (0-based, as ``X_test``); ``disagree``: the training rows' labels differ by more
    than AGREE_PX on a keypoint labelled in two of them (``max_diff_px`` the largest)."""
    rows: list
    test: list
    kind: str
    similarity: float = 1.0
    disagree: bool = False
    max_diff_px: float = 0.0


@dataclass
class Change:
    """One change of the cleaned file: ``row`` of the input (0-based), ``column`` (a
    keypoint column, or "" for a dropped row), the ``old`` and ``new`` text, the ``reason``."""
    row: int
    column: str
    old: str
    new: str
    reason: str


@dataclass
class Audit:
    n_rows: int
    n_test: int
    exact: list = field(default_factory=list)        # [Group]
    near: list = field(default_factory=list)         # [Group]
    blank: list = field(default_factory=list)        # [dict] rows of the training file
    blank_test: list = field(default_factory=list)   # [dict] rows of the test file
    swapped: list = field(default_factory=list)      # [dict]
    outliers: list = field(default_factory=list)     # [dict]
    outside: list = field(default_factory=list)      # [dict]
    groups: list = field(default_factory=list)       # [dict]
    bias: list = field(default_factory=list)         # [dict]
    shape: np.ndarray | None = None

    def counts(self) -> dict:
        return {"rows": self.n_rows, "test images": self.n_test,
                "exact duplicate groups": len(self.exact),
                "near duplicate groups": len(self.near),
                "duplicate groups whose labels disagree": sum(g.disagree for g in
                                                              self.exact + self.near),
                "blank training images": len(self.blank), "blank test images": len(self.blank_test),
                "swapped left/right pairs": len(self.swapped),
                "geometry outliers": len(self.outliers), "points outside the image": len(self.outside),
                "labelling groups": len(self.groups),
                "shared keypoints that differ between groups": sum(b["differs"] for b in self.bias)}


# --------------------------------------------------------------------------- duplicates

def _label_spread(y, rows) -> float:
    """The largest difference (px) between two of ``rows`` on a keypoint both label."""
    if len(rows) < 2:
        return 0.0
    values = np.asarray(y[rows], dtype=np.float64)
    labelled = np.isfinite(values).sum(axis=0) >= 2
    if not labelled.any():
        return 0.0
    values = values[:, labelled]
    spread = np.nanmax(values, axis=0) - np.nanmin(values, axis=0)
    return float(spread.max())


def _groups(members, n_train, y, kind, similarity=None) -> list:
    out = []
    for k, rows in enumerate(members):
        train = sorted(int(r) for r in rows if r < n_train)
        test = sorted(int(r) - n_train for r in rows if r >= n_train)
        diff = _label_spread(y, train) if y is not None else 0.0
        out.append(Group(train, test, kind, 1.0 if similarity is None else float(similarity[k]),
                         diff > AGREE_PX, diff))
    return out


def exact_duplicates(X, X_test=None, y=None) -> list:
    """Groups of images with identical pixels, across the training and test images."""
    both = X if X_test is None or not len(X_test) else np.concatenate([X, X_test])
    first = image_groups(both)
    members: dict[int, list] = {}
    for i, g in enumerate(first):
        members.setdefault(int(g), []).append(i)
    return _groups([m for m in members.values() if len(m) > 1], len(X), y, "exact")


def _thumbs(images, block) -> np.ndarray:
    """Block means, each image centred and scaled to unit length: (n, (96/block)^2) float32."""
    n = len(images)
    side = IMAGE_SIDE // block
    t = images.reshape(n, side, block, side, block).mean(axis=(2, 4), dtype=np.float32)
    t = t.reshape(n, -1)
    t -= t.mean(axis=1, keepdims=True)
    t /= np.linalg.norm(t, axis=1, keepdims=True) + 1e-6
    return t


def _blurred(images) -> np.ndarray:
    """A 5x5 box blur of (n, 96, 96) images, edges repeated: float32. Noise and resampling
    average out; the picture stays."""
    pad = np.pad(np.asarray(images, dtype=np.float32), ((0, 0), (2, 2), (2, 2)), mode="edge")
    rows = sum(pad[:, i:i + IMAGE_SIDE, :] for i in range(5))
    return sum(rows[:, :, j:j + IMAGE_SIDE] for j in range(5)) / 25.0


def _shifted_similarity(a, b, margin) -> np.ndarray:
    """Per pair, the best normalised correlation of blurred images ``a`` and ``b``
    (n, 96, 96) over shifts of up to ``margin`` pixels, on the central part."""
    side = a.shape[1]

    def unit(v):
        v = v - v.mean(axis=(1, 2), keepdims=True)
        return v / (np.sqrt((v * v).sum(axis=(1, 2), keepdims=True)) + 1e-6)

    core = unit(a[:, margin:side - margin, margin:side - margin])
    best = np.full(len(a), -1.0)
    for dy in range(-margin, margin + 1):
        for dx in range(-margin, margin + 1):
            other = unit(b[:, margin + dy:side - margin + dy, margin + dx:side - margin + dx])
            best = np.maximum(best, (core * other).sum(axis=(1, 2)))
    return best


def near_duplicates(X, X_test=None, y=None, threshold=NEAR_SIMILARITY, exclude=()) -> list:
    """Groups of images that are one picture though not identical: re-lit, noisier, moved a
    pixel or two. Coarse thumbnails propose each image's closest neighbours; a pair is kept
    when its blurred images correlate above ``threshold`` at their best shift.
    Identical images are one image here (``exact_duplicates`` reports them); ``exclude``:
    row indices (of training then test) left out, e.g. blank images, which all look alike."""
    both = X if X_test is None or not len(X_test) else np.concatenate([X, X_test])
    n = len(both)
    first = image_groups(both)
    keep = np.ones(n, dtype=bool)
    keep[list(exclude)] = False
    unique = np.flatnonzero((first == np.arange(n)) & keep)
    if len(unique) < 2:
        return []
    images = both[unique].reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    coarse = _thumbs(images, 8)
    pairs = set()
    chunk = 1024
    k = min(NEAR_NEIGHBOURS, len(unique) - 1)
    with bar(len(unique), "near duplicates", "image") as progress:
        for start in range(0, len(unique), chunk):
            sim = coarse[start:start + chunk] @ coarse.T
            rows = np.arange(start, min(start + chunk, len(unique)))
            sim[rows - start, rows] = -1.0
            nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k] if k < sim.shape[1] else \
                np.argsort(-sim, axis=1)
            for r, cols in zip(rows, nearest):
                for c in cols:
                    if sim[r - start, c] >= NEAR_CANDIDATE:
                        pairs.add((min(r, int(c)), max(r, int(c))))
            progress.update(len(rows))
    if not pairs:
        return []
    pairs = np.array(sorted(pairs))
    score = np.empty(len(pairs))
    for s in range(0, len(pairs), 256):
        part = pairs[s:s + 256]
        score[s:s + 256] = _shifted_similarity(_blurred(images[part[:, 0]]),
                                               _blurred(images[part[:, 1]]), NEAR_SHIFT)
    close = pairs[score >= threshold]
    # union-find over the close pairs, then each group with every exact copy of its images
    parent = list(range(len(unique)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in close:
        parent[root(a)] = root(b)
    best: dict[int, float] = {}
    for (a, b), s in zip(pairs, score):
        if s >= threshold:
            r = root(a)
            best[r] = max(best.get(r, 0.0), float(s))
    by_root: dict[int, list] = {}
    for i in range(len(unique)):
        if root(i) in best:
            by_root.setdefault(root(i), []).append(i)
    copies: dict[int, list] = {}
    for i, g in enumerate(first):
        copies.setdefault(int(g), []).append(i)
    members = [sorted(r for u in group for r in copies[int(unique[u])])
               for group in by_root.values()]
    order = sorted(range(len(members)), key=lambda m: members[m][0])
    similarity = [best[list(by_root)[m]] for m in order]
    return _groups([members[m] for m in order], len(X), y, "near", similarity)


# --------------------------------------------------------------------------- no face

def blank_images(X) -> list:
    """Rows whose image is near-constant (no face to find): [{"row", "std", "spread"}]."""
    X = np.asarray(X)
    if not len(X):
        return []
    values = X.reshape(len(X), -1).astype(np.float32)
    std = values.std(axis=1)
    lo, hi = np.percentile(values, [1, 99], axis=1)
    flagged = np.flatnonzero((std < BLANK_STD) | (hi - lo < BLANK_RANGE))
    return [{"row": int(r), "std": float(std[r]), "spread": float(hi[r] - lo[r])} for r in flagged]


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


def outside_points(y) -> list:
    """Labelled keypoints outside the image's frame (keypoints.FRAME)."""
    pts = np.asarray(y, dtype=np.float64).reshape(len(y), _K, 2)
    with np.errstate(invalid="ignore"):
        bad = ((pts < FRAME[0]) | (pts > FRAME[1])).any(axis=2)
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


# --------------------------------------------------------------------------- everything

def audit(X, y, X_test=None) -> Audit:
    """Every check on training images ``X`` (n, 9216) uint8 with labels ``y`` (n, 30) px
    (NaN missing) and, if given, the test images ``X_test``. Deterministic."""
    X = np.asarray(X)
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (len(X), N_TARGETS):
        raise ValueError(f"expected labels of shape ({len(X)}, {N_TARGETS}), got {y.shape}")
    X_test = np.zeros((0, X.shape[1]), dtype=X.dtype) if X_test is None else np.asarray(X_test)
    result = Audit(n_rows=len(X), n_test=len(X_test))
    result.blank = blank_images(X)
    result.blank_test = blank_images(X_test)
    blank_rows = {b["row"] for b in result.blank}
    result.exact = exact_duplicates(X, X_test, y)
    result.near = near_duplicates(X, X_test, y, exclude=[*blank_rows, *(len(X) + b["row"]
                                                                        for b in result.blank_test)])
    result.outside = outside_points(y)
    faces = np.array([r for r in range(len(X)) if r not in blank_rows], dtype=np.int64)
    if len(faces) and (np.isfinite(y[faces]).sum(axis=0) > 0).all():
        shape = mean_shape(y[faces])
        result.shape = shape
        result.swapped = swapped_pairs(y, shape, faces)
        fixed = apply_swaps(y, result.swapped)
        result.outliers = geometry_outliers(fixed, shape, faces)
    cleaned = y
    if result.shape is not None:          # the groups compared on the labels as cleaned
        cleaned = fixed.copy()
        for o in result.outliers:
            k = 2 * KEYPOINTS.index(o["keypoint"])
            cleaned[o["row"], k:k + 2] = np.nan
    rows = faces if len(faces) else np.arange(len(y))
    result.groups, result.bias = labelling_groups(
        cleaned[rows], result.shape, np.isfinite(y[rows, 0::2]) & np.isfinite(y[rows, 1::2]))
    for g in result.groups:        # rows of the file, not of the faces kept
        g["rows"] = [int(rows[r]) for r in g["rows"]]
    return result


# --------------------------------------------------------------------------- cleaning

def _text(value) -> str:
    return "" if not np.isfinite(value) else repr(float(value))


def clean_changes(result: Audit, y) -> list:
    """The changes of the cleaning policy (module docstring), in row order: [Change].
    ``old``/``new`` are values as numbers here; ``write_clean`` puts the file's text in."""
    y = np.asarray(y, dtype=np.float64)
    changes = []
    dropped = set()
    for b in result.blank:
        changes.append(Change(b["row"], "", "row", "", f"no face: near-constant image "
                                                         f"(pixel sd {b['std']:.1f})"))
        dropped.add(b["row"])
    for g in result.exact:
        rows = [r for r in g.rows if r not in dropped]
        if len(rows) < 2:
            continue
        keep = rows[0]
        for r in rows[1:]:
            both = np.isfinite(y[keep]) & np.isfinite(y[r])
            if both.any() and np.abs(y[keep, both] - y[r, both]).max() > AGREE_PX:
                continue           # disagreeing copies stay, both
            for c in np.flatnonzero(np.isfinite(y[r]) & ~np.isfinite(y[keep])):
                changes.append(Change(keep, FEATURE_NAMES[c], "", f"@{r}",
                                      f"merged from row {r}, an exact duplicate image"))
            changes.append(Change(r, "", "row", "", f"exact duplicate of row {keep}, labels agree"))
            dropped.add(r)
    for s in result.swapped:
        if s["row"] in dropped:
            continue
        names = s["keypoints"]
        for left, right in zip(names[0::2], names[1::2]):
            for axis in ("x", "y"):
                a, b = f"{left}_{axis}", f"{right}_{axis}"
                reason = f"left/right swapped: {left} and {right} fit the face exchanged"
                changes.append(Change(s["row"], a, "", f"@{b}", reason))
                changes.append(Change(s["row"], b, "", f"@{a}", reason))
    for o in result.outliers:
        if o["row"] in dropped:
            continue
        for axis in ("x", "y"):
            changes.append(Change(o["row"], f"{o['keypoint']}_{axis}", "", "",
                                  f"outlier: {o['distance']:.1f} px from where the face's other "
                                  f"points put it (robust z {o['z']:.1f})"))
    return sorted(changes, key=lambda c: (c.row, c.column))


def _rows(text: bytes) -> tuple[bytes, list]:
    """(header line, data lines) of a CSV, blank lines skipped as the loader skips them;
    lines without their newline."""
    lines = text.split(b"\n")
    header = lines[0].rstrip(b"\r")
    body = [line.rstrip(b"\r") for line in lines[1:]]
    return header, [line for line in body if line.strip()]


def write_clean(source, path, changes) -> list:
    """Write the training file at ``source`` (plain, .gz or .zip), with ``changes`` made, to
    ``path`` as a plain CSV, atomically; returns the changes with the file's own text as
    ``old`` and ``new``. Unchanged fields keep their text. ``new`` "@COLUMN" takes that
    column's text as it was (a swap) and "@ROW" a row's text of the same column (a merge)."""
    from ._files import unpack
    source = Path(source)
    name, text = unpack(source, source.read_bytes())
    header, rows = _rows(text)
    columns = [c.strip().strip('"').strip() for c in header.decode("utf-8", "replace").split(",")]
    index = {c: i for i, c in enumerate(columns)}
    fields = {}

    def row_fields(r):
        if r not in fields:
            fields[r] = rows[r].split(b",")
        return fields[r]

    original = {}

    def old_text(r, column):
        key = (r, column)
        if key not in original:
            original[key] = row_fields(r)[index[column]].decode("utf-8", "replace")
        return original[key]

    done, drop, edits = [], set(), {}
    for c in changes:
        if c.row >= len(rows):
            raise ValueError(f"{name}: row {c.row + 1}: beyond the file's {len(rows)} rows")
        if not c.column:
            drop.add(c.row)
            done.append(Change(c.row, "", "row", "", c.reason))
            continue
        old = old_text(c.row, c.column)
        if c.new.startswith("@") and c.new[1:].isdigit():
            new = old_text(int(c.new[1:]), c.column)
        elif c.new.startswith("@"):
            new = old_text(c.row, c.new[1:])
        else:
            new = c.new
        edits[(c.row, c.column)] = new
        done.append(Change(c.row, c.column, old, new, c.reason))
    for (r, column), new in edits.items():
        row_fields(r)[index[column]] = new.encode()
    with atomic_write(path, "wb") as f:
        f.write(header + b"\n")
        for r, line in enumerate(rows):
            if r in drop:
                continue
            f.write((b",".join(fields[r]) if r in fields else line) + b"\n")
    return done
