"""Framing a face the way the training faces are framed: the mean keypoint layout, similarity
transforms, and 96x96 crops cut from a photo.

Coordinates here (and in faces.py and annotate.py) are *working* coordinates: the centre of
the top-left pixel of an image, a crop or a photo is (1, 1) (``WORK_ORIGIN``), and a pixel
covers +-0.5 around its centre. A model's keypoints and mean layout are in its labels' pixel
origin (keypoints.py; ``origin_of``); align.py moves them into working coordinates and its
answers back (``to_work``), so a crop-to-photo map of scale s does not add (1 - s) x the
convention's difference to every keypoint. A transform is a 2x3 array ``T`` acting as
``p -> T[:, :2] @ p + T[:, 2]`` on (x, y) points; those from a photo to a crop map photo
coordinates to the crop's.

The mean layout is where the 15 keypoints sit in a 96x96 training image on average (the
per-column mean of the labelled values). ``train`` measures it from the training data and
stores it on the fitted model as ``mean_keypoints_`` (``attach_layout``), with the pixel
origin of its labels as ``pixel_origin_``, so a model file carries both; a crop whose
transform puts a face's keypoints on that layout frames the face as the training images do.

numpy and OpenCV only: nothing here imports torch.
"""
from __future__ import annotations

import numpy as np

from ..keypoints import (DEFAULT_PIXEL_ORIGIN, FEATURE_NAMES, IMAGE_SIDE, LEGACY_PIXEL_ORIGIN,
                         N_TARGETS, check_pixel_origin)

LAYOUT_ATTR = "mean_keypoints_"
ORIGIN_ATTR = "pixel_origin_"
# the pixel origin of this module's working coordinates (photos, crops, transforms)
WORK_ORIGIN = 1.0


# --------------------------------------------------------------------------- the mean layout

def mean_layout(y) -> np.ndarray:
    """The mean of each of the 30 keypoint columns over its labelled values (pixels in a
    96x96 image), float64 (30,). ValueError if a column has no label at all."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] != N_TARGETS:
        raise ValueError(f"expected keypoints as an (n, {N_TARGETS}) array, got shape {y.shape}")
    labelled = np.isfinite(y).sum(axis=0)
    if not labelled.all():
        missing = [FEATURE_NAMES[i] for i in np.flatnonzero(labelled == 0)]
        raise ValueError(f"no labelled value for {', '.join(missing[:3])}"
                         f"{' ...' if len(missing) > 3 else ''}: the mean layout needs all 30 columns")
    return np.nanmean(y, axis=0)


def attach_layout(model, y, pixel_origin=DEFAULT_PIXEL_ORIGIN):
    """Store the mean layout of the training targets ``y`` on the fitted ``model`` (as
    ``mean_keypoints_``), and the pixel origin of those targets (``pixel_origin_``: the
    model's nets', net.estimator.pixel_origin_of), so that the saved model carries them.
    Returns ``model``."""
    setattr(model, LAYOUT_ATTR, mean_layout(y))
    setattr(model, ORIGIN_ATTR, check_pixel_origin(pixel_origin))
    return model


def _wrapped(model):
    """``model`` and the models it wraps (FlipTTA, FrozenEstimator), outermost first."""
    seen = set()
    while model is not None and id(model) not in seen:
        seen.add(id(model))
        yield model
        model = getattr(model, "estimator_", None) or getattr(model, "estimator", None)


def layout_of(model):
    """The mean layout stored on ``model`` or on the model it wraps (FlipTTA,
    FrozenEstimator), as float64 (30,), or None when it has none."""
    for inner in _wrapped(model):
        layout = getattr(inner, LAYOUT_ATTR, None)
        if layout is not None:
            layout = np.asarray(layout, dtype=np.float64).reshape(-1)
            if layout.shape == (N_TARGETS,) and np.isfinite(layout).all():
                return layout
    return None


def origin_of(model) -> float:
    """The pixel origin stored beside the mean layout (``pixel_origin_``) on ``model`` or the
    model it wraps; ``LEGACY_PIXEL_ORIGIN`` for a model saved before it was stored (what such
    models were trained under). net.estimator.pixel_origin_of reads it from the nets
    themselves, for any model."""
    for inner in _wrapped(model):
        origin = getattr(inner, ORIGIN_ATTR, None)
        if origin is not None:
            return float(origin)
    return LEGACY_PIXEL_ORIGIN


def to_work(keypoints, origin) -> np.ndarray:
    """Keypoint columns (..., 30) in labels of pixel origin ``origin`` -> working
    coordinates (``WORK_ORIGIN``); ``from_work`` is the way back."""
    return np.asarray(keypoints, dtype=np.float64) + (WORK_ORIGIN - float(origin))


def from_work(keypoints, origin) -> np.ndarray:
    """Working coordinates -> labels of pixel origin ``origin`` (``to_work``'s inverse)."""
    return np.asarray(keypoints, dtype=np.float64) - (WORK_ORIGIN - float(origin))


def points(y) -> np.ndarray:
    """(..., 30) keypoint columns -> (..., 15, 2) (x, y) points."""
    y = np.asarray(y, dtype=np.float64)
    return y.reshape(*y.shape[:-1], N_TARGETS // 2, 2)


# --------------------------------------------------------------------------- transforms

def apply(T, pts) -> np.ndarray:
    """``T`` (2, 3) or (n, 2, 3) applied to points (..., 2) or (n, k, 2)."""
    T = np.asarray(T, dtype=np.float64)
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ np.swapaxes(T[..., :2], -1, -2) + T[..., None, :, 2] if T.ndim == 3 \
        else pts @ T[:, :2].T + T[:, 2]


def invert(T) -> np.ndarray:
    """The inverse of an affine transform (2, 3) or (n, 2, 3)."""
    T = np.asarray(T, dtype=np.float64)
    inverse = np.linalg.inv(T[..., :2])
    shift = -(inverse @ T[..., 2:])
    return np.concatenate([inverse, shift], axis=-1)


def compose(outer, inner) -> np.ndarray:
    """``outer`` after ``inner``: p -> outer(inner(p)) (2, 3 each)."""
    outer = np.asarray(outer, dtype=np.float64)
    inner = np.asarray(inner, dtype=np.float64)
    return np.concatenate([outer[:, :2] @ inner[:, :2],
                           outer[:, :2] @ inner[:, 2:] + outer[:, 2:]], axis=1)


def scale_of(T) -> float:
    """The (geometric mean) scale of an affine transform."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(T, dtype=np.float64)[:2, :2]))))


def fit_similarity(src, dst, rotate=True) -> np.ndarray:
    """The similarity transform (rotation, uniform scale, shift; no reflection) that maps the
    points ``src`` (k, 2) closest to ``dst`` (k, 2) in least squares (Umeyama). Pairs with a
    NaN are left out; ``rotate=False`` fits scale and shift only. ValueError when fewer than
    two pairs are left or they coincide."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    keep = np.isfinite(src).all(axis=1) & np.isfinite(dst).all(axis=1)
    src, dst = src[keep], dst[keep]
    if len(src) < 2:
        raise ValueError("a similarity transform needs two points or more")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    spread = (s ** 2).sum()
    if spread <= 1e-12:
        raise ValueError("the points coincide")
    if rotate:
        # complex numbers: d ~ z * s with z = scale * e^{i angle}
        zs, zd = s[:, 0] + 1j * s[:, 1], d[:, 0] + 1j * d[:, 1]
        z = (np.conj(zs) * zd).sum() / spread
        a, b = z.real, z.imag
    else:
        a, b = (s * d).sum() / spread, 0.0
    A = np.array([[a, -b], [b, a]])
    return np.concatenate([A, (mu_d - A @ mu_s)[:, None]], axis=1)


def pixel_matrix(T) -> np.ndarray:
    """OpenCV's warp matrix (0-based pixel indices) of a transform in working coordinates
    (pixel centres at index + 1): index' = A index + (A 1 + b - 1)."""
    T = np.asarray(T, dtype=np.float64)
    return np.concatenate([T[:, :2], (T[:, :2].sum(axis=1) + T[:, 2] - 1.0)[:, None]], axis=1)


def frame_corners(T, side=IMAGE_SIDE) -> np.ndarray:
    """The corners of the ``side`` x ``side`` crop of ``T`` (photo -> crop), in the photo."""
    lo, hi = 0.5, side + 0.5
    corners = np.array([[lo, lo], [hi, lo], [hi, hi], [lo, hi]])
    return apply(invert(T), corners)


# --------------------------------------------------------------------------- crops

class FacePatch:
    """The part of a photo around one face, kept (downscaled where the face is large) so
    that the face can be cropped again after the photo is gone.

    ``image`` is float32 grey levels; ``to_patch`` maps photo coordinates to the patch's.
    The patch covers the first crop's square and as much again on every side (clipped to
    the photo), at about 1.5 x the crop's resolution (never above the photo's), area-averaged,
    so crops of any later pass are bilinear samples of a patch that is not much finer than
    the crop: no aliasing from a large photo.
    """

    MARGIN = 0.75      # the patch spans the crop's square plus this x its side on every side
    OVERSAMPLE = 1.5   # patch pixels per crop pixel, at the first crop's scale

    def __init__(self, grey, T0):
        import cv2
        height, width = grey.shape
        corners = frame_corners(T0)
        lo, hi = corners.min(axis=0), corners.max(axis=0)
        margin = (hi - lo) * self.MARGIN
        # 0-based pixel index ranges [c0, c1) x [r0, r1)
        c0, r0 = (np.floor(lo - margin - 1)).astype(int).clip(0, [width - 1, height - 1])
        c1, r1 = (np.ceil(hi + margin)).astype(int).clip([c0 + 1, r0 + 1], [width, height])
        region = np.asarray(grey[r0:r1, c0:c1], dtype=np.float32)
        factor = min(1.0, self.OVERSAMPLE * scale_of(T0))
        rw, rh = c1 - c0, r1 - r0
        nw, nh = max(1, round(rw * factor)), max(1, round(rh * factor))
        if (nw, nh) != (rw, rh):
            region = cv2.resize(region, (nw, nh), interpolation=cv2.INTER_AREA)
        fx, fy = nw / rw, nh / rh
        # region coordinate = photo coordinate - (c0, r0); cv2.resize keeps the outer edges
        # (at 0.5) in place: patch = f * (region - 0.5) + 0.5
        self.image = region
        self.to_patch = np.array([[fx, 0.0, 0.5 - fx * (c0 + 0.5)],
                                  [0.0, fy, 0.5 - fy * (r0 + 0.5)]])

    def crop(self, T, side=IMAGE_SIDE) -> np.ndarray:
        """The ``side`` x ``side`` float32 crop of transform ``T`` (photo -> crop), bilinear,
        the patch's edge pixels repeated beyond it."""
        import cv2
        M = pixel_matrix(compose(T, invert(self.to_patch)))
        return cv2.warpAffine(self.image, M, (side, side), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)


def warp_to_crop(grey, T, side=IMAGE_SIDE) -> np.ndarray:
    """The crop of transform ``T`` straight from a whole (grey, float) image, bilinear."""
    import cv2
    return cv2.warpAffine(np.asarray(grey, dtype=np.float32), pixel_matrix(T), (side, side),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
