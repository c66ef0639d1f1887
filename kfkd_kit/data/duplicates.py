"""The audit's image checks (audit.py runs them all): exact and near-duplicate images,
across the training and test files, and near-constant images with no face to find."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..keypoints import IMAGE_SIDE
from ..utils.progress import bar
from .splits import image_groups

# thresholds, each beside what it measures
AGREE_PX = 1.0          # duplicate rows agree when every shared keypoint is within this
NEAR_SIMILARITY = 0.99  # near duplicates: blurred, normalised correlation at the best shift
NEAR_CANDIDATE = 0.90   # ... of pairs whose coarse 12x12 thumbnails correlate this well
NEAR_NEIGHBOURS = 8     # ... among each image's closest thumbnails
NEAR_SHIFT = 2          # ... the shift searched, in pixels each way
BLANK_STD = 6.0         # no face: pixel standard deviation below this (grey levels)
BLANK_RANGE = 24.0      # ... or the 1st to 99th percentile spread below this


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
