"""The competition's geometry, defined once: feature names, flip pairs, the 48-pixel scaling.

Coordinates are in pixels of a 96x96 image. Where a pixel sits in the labels' coordinates is
the data set's *pixel origin*, a declared setting (``pixel_origin``, PIXEL_ORIGIN=): the x (and
y) of the top-left pixel's centre, so the centre of (0-based) column ``i`` is at
``x = i + origin``. 0.5 reads labels as continuous coordinates ((0, 0) the image's top-left
corner: faces15, and the tutorial's flip x -> 96 - x), 1 as 1-based pixel centres, 0 as
0-based ones. Reversing the columns of an image (column ``i`` -> ``95 - i``) moves the
content at ``x`` to ``95 + 2 origin - x``: the image's own mirror axis is
``image_axis(origin)`` (48 for 0.5). Every fitted net keeps its origin (``pixel_origin``), and
everything that maps coordinates to pixels (the soft-argmax grid, augmentation, the mirror
axis, synthetic labels, plots, crops of photos) takes it from there; models saved before it
was a setting were trained under ``LEGACY_PIXEL_ORIGIN`` (1).

Where a labelled keypoint sits relative to the pixels it marks is a habit of whoever (or
whatever tool) made the labels, so the *labels'* mirror axis - the ``a`` in x -> 2a - x that
maps a face's labels to the labels of its mirror image - is a property of the data set, not
of this layout. ``mirror.estimate_flip_axis`` measures it from the training images and
labels; every fitted net keeps it as ``flip_axis_`` and uses it for flip augmentation and
flip TTA (``mirror_targets(..., axis=)``). Measured values are in docs/RESULTS.md.
"Left" and "right" are from the subject's point of view, as in Kaggle's files, so the
subject's left eye appears on the image's right (large x).

numpy only at import: the torch helpers import torch when called, so loading data does not.
"""
from __future__ import annotations

import numpy as np

IMAGE_SIDE = 96
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE
# Targets are scaled to about [-1, 1] by (y - CENTER) / SCALE, as in the tutorial.
CENTER = 48.0
SCALE = 48.0
# The labels' x (and y) of the top-left pixel's centre: DEFAULT_PIXEL_ORIGIN for new models
# (continuous coordinates: faces15 declares them, and the tutorial's flip x -> 96 - x reads
# Kaggle's labels so; Kaggle's own convention was never measured here), LEGACY_PIXEL_ORIGIN
# for models saved before the origin was a setting (what they were trained under).
DEFAULT_PIXEL_ORIGIN = 0.5
LEGACY_PIXEL_ORIGIN = 1.0


def check_pixel_origin(origin) -> float:
    """``origin`` as a float in [0, 1] (0.5 continuous, 1 one-based, 0 zero-based pixel
    centres), or a one-line ValueError."""
    try:
        value = float(origin)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(origin, bool) or not 0.0 <= value <= 1.0:
        raise ValueError(f"the pixel origin (the labels' x of the top-left pixel's centre) must "
                         f"be a number from 0 to 1 (0.5: continuous, 1: 1-based, 0: 0-based), "
                         f"got {origin!r}")
    return value


def pixel_centre(origin=DEFAULT_PIXEL_ORIGIN) -> float:
    """The image's centre in labels of pixel origin ``origin`` (48 for 0.5, 48.5 for 1):
    reversing the columns mirrors about it, and rotations and scalings turn about it."""
    return (IMAGE_SIDE - 1.0) / 2 + float(origin)


def image_axis(origin=DEFAULT_PIXEL_ORIGIN) -> float:
    """The mirror axis of labels that mark pixel centres exactly (``pixel_centre``); a data
    set's own axis is measured (mirror.estimate_flip_axis) and may differ by a fraction of a
    pixel."""
    return pixel_centre(origin)


def frame(origin=DEFAULT_PIXEL_ORIGIN) -> tuple[float, float]:
    """(low, high): a keypoint is in the frame while both its coordinates lie within the
    image's outer edges, half a pixel beyond the centres of the first and last pixels
    (0 ... 96 for origin 0.5)."""
    return float(origin) - 0.5, IMAGE_SIDE - 0.5 + float(origin)


KEYPOINTS = (
    "left_eye_center",
    "right_eye_center",
    "left_eye_inner_corner",
    "left_eye_outer_corner",
    "right_eye_inner_corner",
    "right_eye_outer_corner",
    "left_eyebrow_inner_end",
    "left_eyebrow_outer_end",
    "right_eyebrow_inner_end",
    "right_eyebrow_outer_end",
    "nose_tip",
    "mouth_left_corner",
    "mouth_right_corner",
    "mouth_center_top_lip",
    "mouth_center_bottom_lip",
)
# Kaggle's 30 target columns, in Kaggle's order: x then y for each keypoint.
FEATURE_NAMES = tuple(f"{k}_{axis}" for k in KEYPOINTS for axis in ("x", "y"))
N_TARGETS = len(FEATURE_NAMES)
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}
X_COLUMNS = np.arange(0, N_TARGETS, 2)

# The four keypoints labelled on (almost) every Kaggle training row.
COMMON_KEYPOINTS = ("left_eye_center", "right_eye_center", "nose_tip", "mouth_center_bottom_lip")

# Left/right keypoint pairs that swap under a mirror; nose tip and lip centres stay.
KEYPOINT_FLIP_PAIRS = (
    ("left_eye_center", "right_eye_center"),
    ("left_eye_inner_corner", "right_eye_inner_corner"),
    ("left_eye_outer_corner", "right_eye_outer_corner"),
    ("left_eyebrow_inner_end", "right_eyebrow_inner_end"),
    ("left_eyebrow_outer_end", "right_eyebrow_outer_end"),
    ("mouth_left_corner", "mouth_right_corner"),
)


def columns_of(keypoints) -> list[int]:
    """Target column indices (x and y) of the named keypoints, in Kaggle's order."""
    wanted = set(keypoints)
    unknown = wanted - set(KEYPOINTS)
    if unknown:
        raise ValueError(f"unknown keypoints: {sorted(unknown)}")
    return [i for i, name in enumerate(FEATURE_NAMES) if name.rsplit("_", 1)[0] in wanted]


def flip_pairs(columns=None) -> list[tuple[int, int]]:
    """Column-index pairs to swap under a mirror, within ``columns`` (default: all 30).

    Indices are positions within ``columns``, so a specialist predicting a subset of the
    targets gets pairs that index its own outputs.
    """
    columns = list(range(N_TARGETS)) if columns is None else list(columns)
    position = {c: i for i, c in enumerate(columns)}
    pairs = []
    for left, right in KEYPOINT_FLIP_PAIRS:
        for axis in ("x", "y"):
            a = FEATURE_INDEX[f"{left}_{axis}"]
            b = FEATURE_INDEX[f"{right}_{axis}"]
            if a in position and b in position:
                pairs.append((position[a], position[b]))
    return pairs


def to_unit(y_pixels):
    """Pixels -> the net's target scale, about [-1, 1]. NaN stays NaN."""
    return (y_pixels - CENTER) / SCALE


def from_unit(y_unit):
    """The net's target scale -> pixels."""
    return y_unit * SCALE + CENTER


def mirror_targets(y, columns=None, unit=False, axis=None):
    """Mirror keypoint targets left-right: reflect x about ``axis`` (x -> 2 axis - x; default
    ``image_axis()``, the default origin's) and swap left/right columns.

    ``y`` is an (n, k) array or tensor whose k columns are ``columns`` of FEATURE_NAMES
    (default all 30), in pixels or (``unit=True``) the net's scale; ``axis`` is in pixels
    either way. Works on numpy arrays and torch tensors; returns a new array.
    """
    columns = list(range(N_TARGETS)) if columns is None else list(columns)
    out = y.clone() if hasattr(y, "clone") else np.array(y, copy=True)
    x_positions = [i for i, c in enumerate(columns) if c % 2 == 0]
    total = 2.0 * float(image_axis() if axis is None else axis)
    if unit:
        total = (total - 2 * CENTER) / SCALE
    out[:, x_positions] = total - out[:, x_positions]
    pairs = flip_pairs(columns)
    if pairs:
        a = [p[0] for p in pairs]
        b = [p[1] for p in pairs]
        swapped = out[:, b + a]
        out[:, a + b] = swapped
    return out


def mirror_images(X):
    """Mirror images left-right; ``X`` is (..., 9216) flat or (..., 96, 96). numpy or torch."""
    flat = X.shape[-1] == N_PIXELS
    if flat:
        X = X.reshape(*X.shape[:-1], IMAGE_SIDE, IMAGE_SIDE)
    out = X.flip(-1) if hasattr(X, "flip") else X[..., ::-1].copy()
    if flat:
        out = out.reshape(*out.shape[:-2], N_PIXELS)
    return out


def shift_images(X, dx: int, dy: int):
    """Move image content ``dx`` whole pixels right and ``dy`` down; the uncovered pixels are
    0, as outside an ``affine_images`` warp. ``X`` is a numpy array (n, 9216) or (n, 96, 96);
    returns a new array of its shape and dtype."""
    X = np.asarray(X)
    images = X.reshape(len(X), IMAGE_SIDE, IMAGE_SIDE)
    out = np.zeros_like(images)
    side, dx, dy = IMAGE_SIDE, int(dx), int(dy)
    if abs(dx) < side and abs(dy) < side:
        out[:, max(dy, 0):side + min(dy, 0), max(dx, 0):side + min(dx, 0)] = \
            images[:, max(-dy, 0):side - max(dy, 0), max(-dx, 0):side - max(dx, 0)]
    return out.reshape(X.shape)


def check_shift(shift) -> int:
    """A TTA shift as a whole number of pixels, 0 <= shift < 48, or a one-line ValueError."""
    try:
        value = float(shift)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(shift, bool) or not value.is_integer() or not 0 <= value < IMAGE_SIDE // 2:
        raise ValueError(f"the TTA shift must be a whole number of pixels from 0 to "
                         f"{IMAGE_SIDE // 2 - 1}, got {shift!r}")
    return int(value)


def shift_grid(shift) -> list[tuple[int, int]]:
    """The (dx, dy) of a 3x3 grid of shifts ``shift`` pixels apart, (0, 0) first; just
    (0, 0) for shift 0."""
    shift = check_shift(shift)
    steps = (0, -shift, shift) if shift else (0,)
    return [(dx, dy) for dy in steps for dx in steps]


def flip_shift_pairs(predict, X, axis, shift=0):
    """For each (dx, dy) of ``shift_grid(shift)``: ((dx, dy), ``predict`` on the shifted
    images, ``predict`` on their mirrors mirrored back about ``axis``), not yet moved back.
    ``predict`` maps images shaped like ``X`` to (n, 30) float64 pixels."""
    for dx, dy in shift_grid(shift):
        moved = shift_images(X, dx, dy) if dx or dy else X
        yield (dx, dy), predict(moved), mirror_targets(predict(mirror_images(moved)), axis=axis)


def moved_back(view, dx, dy) -> np.ndarray:
    """Keypoints predicted on images moved by (dx, dy), in place moved back."""
    view[:, 0::2] -= dx
    view[:, 1::2] -= dy
    return view


def flip_shift_views(predict, X, axis, shift=0) -> np.ndarray:
    """(views, n, 30): for each of ``flip_shift_pairs``, the mean of the prediction and the
    mirrored one, moved back by (dx, dy). Both flip TTA paths (``tta.FlipTTA``, and
    ``onnxmodel`` without torch) average these views."""
    return np.stack([moved_back((plain + mirrored) / 2, dx, dy)
                     for (dx, dy), plain, mirrored in flip_shift_pairs(predict, X, axis, shift)])


def keypoint_xy_positions(columns=None) -> tuple[list[int], list[int]]:
    """Positions of each keypoint's x and y within ``columns`` (default: all 30), for the
    keypoints whose x and y are both among them: two equally long lists."""
    columns = list(range(N_TARGETS)) if columns is None else list(columns)
    position = {c: i for i, c in enumerate(columns)}
    xs, ys = [], []
    for c in columns:
        if c % 2 == 0 and c + 1 in position:
            xs.append(position[c])
            ys.append(position[c + 1])
    return xs, ys


def affine_targets(y, matrix, offset, columns=None, unit=False, origin=DEFAULT_PIXEL_ORIGIN):
    """Move keypoint targets by per-row affine maps; keypoints leaving the frame become NaN.

    Row i's point p goes to ``matrix[i] @ (p - c) + c + offset[i]`` with ``c =
    pixel_centre(origin)`` (labels of pixel origin ``origin``, (x, y) order). ``y`` is an
    (n, k) torch tensor whose k columns are ``columns`` of FEATURE_NAMES, in pixels or
    (``unit=True``) the net's scale; ``matrix`` is (n, 2, 2) and ``offset`` (n, 2) in pixels. Returns a new tensor.
    A moved keypoint outside ``frame(origin)`` is a missing label (NaN), not a wrong one.
    """
    import torch

    xs, ys = keypoint_xy_positions(columns)
    out = y.clone()
    if not xs:
        return out
    points = torch.stack([y[:, xs], y[:, ys]], dim=-1)          # (n, keypoints, 2)
    if unit:
        points = from_unit(points)
    centre, (low, high) = pixel_centre(origin), frame(origin)
    moved = (points - centre) @ matrix.transpose(1, 2) + centre + offset[:, None, :]
    outside = ((moved < low) | (moved > high)).any(dim=-1, keepdim=True)
    moved = moved.masked_fill(outside, float("nan"))
    if unit:
        moved = to_unit(moved)
    out[:, xs] = moved[..., 0].to(out.dtype)
    out[:, ys] = moved[..., 1].to(out.dtype)
    return out


def affine_images(X, matrix, offset):
    """Warp images with the same maps as ``affine_targets``: what sits at p moves to
    ``matrix @ (p - c) + c + offset`` about the image's centre ``c``. Bilinear; outside is 0.

    ``X`` is a float torch tensor (n, 9216) or (n, 96, 96). grid_sample's normalised
    coordinates with ``align_corners=False`` put pixel i's centre at (i - 47.5) / 48, which is
    (x - pixel_centre(origin)) / 48 for its label x = i + origin, whatever the origin, so
    image and keypoints (moved with the same origin) move together exactly.
    """
    import torch
    import torch.nn.functional as F

    shape = X.shape
    images = X.reshape(len(X), 1, IMAGE_SIDE, IMAGE_SIDE)
    # grid_sample asks, for every output pixel, where to read the input: the inverse map.
    inverse = torch.linalg.inv(matrix.float())
    half = IMAGE_SIDE / 2
    theta = torch.cat([inverse, -(inverse @ offset.float()[:, :, None]) / half], dim=2)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)
    return warped.reshape(shape)


# The tutorial's six specialists: groups of keypoints that one net each learns on the rows
# labelled for that group.
SPECIALIST_GROUPS = {
    "eye_centers": ("left_eye_center", "right_eye_center"),
    "nose_tip": ("nose_tip",),
    "mouth": ("mouth_left_corner", "mouth_right_corner", "mouth_center_top_lip"),
    "bottom_lip": ("mouth_center_bottom_lip",),
    "eye_corners": ("left_eye_inner_corner", "right_eye_inner_corner",
                    "left_eye_outer_corner", "right_eye_outer_corner"),
    "eyebrows": ("left_eyebrow_inner_end", "right_eyebrow_inner_end",
                 "left_eyebrow_outer_end", "right_eyebrow_outer_end"),
}
