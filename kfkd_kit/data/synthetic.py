"""Synthetic faces, for running the whole toolkit without Kaggle's data
(synthetic_dataset.py writes them in Kaggle's file layout).

Drawing
-------
Each face is drawn in its own *canonical frame* ``(u, v)``: ``u`` to the image's right, ``v``
down, origin at the face centre, units of pixels before scaling.  Every feature is placed
there from per-face shape parameters, then a similarity transform (scale ``s`` in
[0.85, 1.15], in-plane rotation in [-15, 15] degrees, translation up to about 8 px, reduced
where needed so that every keypoint lies inside [1, 94]) maps the frame onto the 96x96 image:

    x = cx + s * (u cos t - v sin t),    y = cy + s * (u sin t + v cos t)

with ``(cx, cy) = (47.5, 48) + translation``.  Keypoints are the images of canonical points
under exactly this map, and each pixel is shaded by pulling its centre (column ``i`` at
``x = i``, row ``j`` at ``y = j``) back through the inverse map; so the coordinates agree
with the drawing to floating-point precision. ``make_faces`` then adds the declared pixel
origin (``pixel_origin``, keypoints.py; default 0.5, continuous coordinates as faces15's) to
every keypoint, so the labels are written in the convention the model is trained under and a
synthetic face's labels mirror exactly about ``keypoints.image_axis(pixel_origin)``. A real
data set's mirror axis is measured (``mirror.py``).

What is drawn, back to front (all with soft, anti-aliased edges):

* a background with a random grey level;
* the face, an ellipse of skin; hair (a darker cap above a hairline, sometimes absent);
* two almond-shaped eyes: dark lids, a lighter eye white, a dark iris clipped by the lids and
  a near-black pupil centred on the eye-centre keypoint; the eye corners are the ends of the
  almond;
* eyebrows: thick dark line segments whose ends are the eyebrow inner/outer keypoints;
* the nose: a dark blob at the nose tip and two nostrils beside it;
* the mouth: lips between two parabolas that meet at the mouth corners, the top (bottom)
  lip-centre keypoint on the upper (lower) parabola, and a dark line between the lips;
* a linear lighting gradient in a random direction, random contrast and brightness, and
  pixel noise of random strength (close to Gaussian: the centred sum of four uniform random
  bytes), then rounding and clipping to 0..255.

Per face the eye spacing, eye size, brow height/length/slant, nose length, mouth position,
width and lip thickness, face size and all grey levels vary.  The canonical drawing depends
on ``u`` only through ``|u|`` and ``u**2``, so it is exactly left-right symmetric and "left"
is the subject's left, on the image's right (``left_eye_center_x`` about 66): a mirrored
image (columns reversed) is again a face of this family, with keypoints
``keypoints.mirror_targets(kp)``.

Determinism
-----------
Everything comes from ``numpy.random.Generator`` objects seeded by ``seed``; the same seed
gives bit-identical images, keypoints and files.  Faces are also prefix-stable:
``make_faces(10, s)`` equals the first 10 faces of ``make_faces(1000, s)``.
Rendering is vectorised numpy over small chunks of faces with preallocated buffers
(a few thousand faces per second on one core).
"""
from __future__ import annotations

import numpy as np

from ..keypoints import (DEFAULT_PIXEL_ORIGIN, IMAGE_SIDE, KEYPOINTS, N_PIXELS, N_TARGETS,
                         check_pixel_origin)

__all__ = ["make_faces"]

# Bounds of the keypoints after the translation has been clamped.
KEYPOINT_MIN = 1.0
KEYPOINT_MAX = IMAGE_SIDE - 2.0
FACE_CENTRE = (47.5, 48.0)
MAX_SHIFT = 8.0
_CHUNK = 8

# Per-face uniform ranges, one column of the parameter matrix each (order matters: it fixes
# which random number drives which parameter).
_RANGES = {
    "scale": (0.85, 1.15),
    "angle": (-np.deg2rad(15.0), np.deg2rad(15.0)),
    "shift_x": (-MAX_SHIFT, MAX_SHIFT),
    "shift_y": (-MAX_SHIFT, MAX_SHIFT),
    # Shape, canonical pixels.
    "eye_dx": (15.5, 20.0),       # eye centre |u|
    "eye_v": (-12.5, -8.5),       # eye centre v
    "eye_hw": (5.0, 7.0),         # half width: the corners are at eye_dx -/+ eye_hw
    "eye_hh": (2.3, 3.4),         # half height of the lids
    "iris_r": (1.8, 2.6),
    "pupil_r": (0.9, 1.3),
    "brow_gap": (6.0, 9.5),       # brow inner end above the eye centre
    "brow_in": (-2.0, 1.0),       # inner end |u| relative to the inner eye corner
    "brow_out": (2.0, 5.5),       # outer end |u| beyond the outer eye corner
    "brow_slant": (-2.0, 2.5),    # outer end v minus inner end v
    "brow_th": (0.9, 1.6),        # half thickness
    "nose_v": (11.0, 17.0),
    "nose_r": (1.6, 2.3),
    "nostril_dx": (2.8, 4.2),
    "mouth_gap": (9.0, 14.0),     # mouth corners below the nose tip
    "mouth_hw": (10.5, 16.0),
    "lip_top": (2.0, 4.0),
    "lip_bottom": (2.5, 4.8),
    "face_a": (35.0, 42.0),       # face ellipse half axes and centre
    "face_b": (44.0, 52.0),
    "face_v0": (0.0, 6.0),
    "hairline": (3.0, 11.0),      # above the brows' top
    # Grey levels (0..1 before contrast) and photometry.
    "bg": (0.03, 0.97),
    "skin": (0.35, 0.85),
    "hair": (0.03, 1.0),          # > 0.6 means no hair (bald); else hair level * skin
    "white": (0.05, 0.25),        # eye white = skin + this
    "lid": (0.3, 0.6),            # multiples of skin
    "iris": (0.15, 0.45),
    "pupil": (0.0, 0.08),         # absolute
    "brow": (0.15, 0.45),
    "nose": (0.45, 0.7),
    "nostril": (0.2, 0.45),
    "lips": (0.5, 0.8),
    "mouth_line": (0.15, 0.4),
    "light_angle": (-np.pi, np.pi),
    "light": (0.0, 0.004),        # gradient per pixel
    "contrast": (0.7, 1.3),
    "brightness": (-0.1, 0.1),
    "noise": (0.0, 0.045),
}
_PARAM_NAMES = tuple(_RANGES)


def _sample_parameters(rng: np.random.Generator, n: int) -> dict:
    """One row of uniforms per face (row-major, so prefix-stable), mapped to the ranges."""
    uniform = rng.random((n, len(_PARAM_NAMES)))
    lo = np.array([_RANGES[k][0] for k in _PARAM_NAMES])
    hi = np.array([_RANGES[k][1] for k in _PARAM_NAMES])
    values = lo + uniform * (hi - lo)
    return {k: values[:, i] for i, k in enumerate(_PARAM_NAMES)}


def _canonical_keypoints(p: dict) -> np.ndarray:
    """(n, 15, 2) keypoints in the canonical frame, in KEYPOINTS order."""
    ed, ev, hw = p["eye_dx"], p["eye_v"], p["eye_hw"]
    b_in_u, b_in_v, b_out_u, b_out_v = _brow_ends(p)
    nose_v = p["nose_v"]
    mouth_v = nose_v + p["mouth_gap"]
    zero = np.zeros_like(ed)
    points = {
        "left_eye_center": (ed, ev),
        "right_eye_center": (-ed, ev),
        "left_eye_inner_corner": (ed - hw, ev),
        "left_eye_outer_corner": (ed + hw, ev),
        "right_eye_inner_corner": (-(ed - hw), ev),
        "right_eye_outer_corner": (-(ed + hw), ev),
        "left_eyebrow_inner_end": (b_in_u, b_in_v),
        "left_eyebrow_outer_end": (b_out_u, b_out_v),
        "right_eyebrow_inner_end": (-b_in_u, b_in_v),
        "right_eyebrow_outer_end": (-b_out_u, b_out_v),
        "nose_tip": (zero, nose_v),
        "mouth_left_corner": (p["mouth_hw"], mouth_v),
        "mouth_right_corner": (-p["mouth_hw"], mouth_v),
        "mouth_center_top_lip": (zero, mouth_v - p["lip_top"]),
        "mouth_center_bottom_lip": (zero, mouth_v + p["lip_bottom"]),
    }
    return np.stack([np.stack(points[k], axis=-1) for k in KEYPOINTS], axis=1)


def _brow_ends(p: dict):
    b_in_u = p["eye_dx"] - p["eye_hw"] + p["brow_in"]
    b_in_v = p["eye_v"] - p["brow_gap"]
    b_out_u = p["eye_dx"] + p["eye_hw"] + p["brow_out"]
    b_out_v = b_in_v + p["brow_slant"]
    return b_in_u, b_in_v, b_out_u, b_out_v


def _place(p: dict, canonical: np.ndarray):
    """Clamp the translation so that all keypoints fall in [KEYPOINT_MIN, KEYPOINT_MAX];
    return (cx, cy, cos, sin, scale) and the (n, 15, 2) image keypoints."""
    s, t = p["scale"], p["angle"]
    c, sn = np.cos(t), np.sin(t)
    u, v = canonical[..., 0], canonical[..., 1]
    rx = s[:, None] * (u * c[:, None] - v * sn[:, None])
    ry = s[:, None] * (u * sn[:, None] + v * c[:, None])
    cx0, cy0 = FACE_CENTRE
    # Allowed translation: KEYPOINT_MIN <= centre + shift + r <= KEYPOINT_MAX for every r.
    tx = np.clip(p["shift_x"], KEYPOINT_MIN - cx0 - rx.min(1), KEYPOINT_MAX - cx0 - rx.max(1))
    ty = np.clip(p["shift_y"], KEYPOINT_MIN - cy0 - ry.min(1), KEYPOINT_MAX - cy0 - ry.max(1))
    cx, cy = cx0 + tx, cy0 + ty
    points = np.stack([cx[:, None] + rx, cy[:, None] + ry], axis=-1)
    return (cx, cy, c, sn, s), points


def _col(a):
    """(n,) -> (n, 1, 1) float32, for broadcasting over images."""
    return np.asarray(a, dtype=np.float32)[:, None, None]


# Rendering works on preallocated (chunk, 96, 96) buffers with ``out=`` ufuncs: fresh
# temporaries of this size make malloc hand memory back to the OS and fault it in again,
# which costs more than the arithmetic.
_BUFFERS = ("u", "v", "au", "u2", "a", "b", "c", "d", "e", "m1", "m2", "img")


def _blend(img, mask, colour, tmp):
    """img <- img + mask * (colour - img), in place (``tmp`` is scratch)."""
    np.subtract(colour, img, out=tmp)
    tmp *= mask
    img += tmp


def _soft(x, scale, offset, out):
    """Anti-aliased mask clip(x * scale + offset, 0, 1) into ``out``."""
    np.multiply(x, scale, out=out)
    out += offset
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _disc(d2, radius, px, out):
    """Mask of the disc d2 < radius**2 (d2 a squared canonical distance); the edge is ~1 px
    wide: signed distance ~ (radius**2 - d2) / (2 radius) canonical units, times px."""
    k = px / (2 * radius)
    return _soft(d2, -k, radius * radius * k + 0.5, out)


def _render(p: dict, placement, noise_bits: np.ndarray, w: dict) -> np.ndarray:
    """Draw one chunk of faces into ``w["img"]``: 0..255 floats, (n, 96, 96).

    ``noise_bits`` is (n, 96, 96) uniform uint32 (overwritten): the sum of its four bytes is
    the pixel noise (Irwin-Hall, close to Gaussian).  ``w`` holds the scratch buffers.
    """
    f32 = np.float32
    cx, cy, c, sn, s = placement
    n = len(cx)
    u, v, au, u2, A, B, C, D, E, M1, M2, img = (w[k][:n] for k in _BUFFERS)
    P = {k: _col(val) for k, val in p.items()}
    skin = P["skin"]
    px = _col(s)                                 # canonical unit -> pixels
    grid = np.arange(IMAGE_SIDE, dtype=f32)
    dx = grid[None, None, :] - _col(cx)          # (n, 1, 96)
    dy = grid[None, :, None] - _col(cy)          # (n, 96, 1)
    cs, ss = _col(c / s), _col(sn / s)
    np.add(dx * cs, dy * ss, out=u)              # canonical coordinates of pixel centres
    np.subtract(dy * cs, dx * ss, out=v)
    np.abs(u, out=au)
    np.multiply(u, u, out=u2)
    img[...] = P["bg"]

    # Face ellipse r2 = (u/a)^2 + ((v - v0)/b)^2 < 1; hair: the same ellipse grown by
    # HAIR_GROWTH, above the hairline.
    fa, fb = P["face_a"], P["face_b"]
    np.subtract(v, P["face_v0"], out=A)
    A *= A
    A *= 1.0 / (fb * fb)
    np.multiply(u2, 1.0 / (fa * fa), out=B)
    B += A                                       # r2
    k = np.minimum(fa, fb) * px / 2              # (1 - r2) ~ 2 * signed distance / axis
    _blend(img, _soft(B, -k, k + 0.5, M1), skin, C)
    b_in_u, b_in_v, b_out_u, b_out_v = (_col(x) for x in _brow_ends(p))
    hairline = np.minimum(b_in_v, b_out_v) - P["brow_th"] - P["hairline"]
    hair_level = np.where(P["hair"] > 0.6, skin, P["hair"] * skin)
    g2 = f32(_HAIR_GROWTH ** 2)
    kh = k * _HAIR_GROWTH
    _soft(B, -kh / g2, kh + 0.5, M1)
    M1 *= _soft(v, -px, hairline * px + 0.5, M2)
    _blend(img, M1, hair_level, C)

    # Eyes: almonds |dv| < hh * q, q = 1 - (du / hw)^2, around (+-eye_dx, eye_v).
    np.subtract(au, P["eye_dx"], out=A)          # du
    np.subtract(v, P["eye_v"], out=B)            # dv
    np.multiply(A, A, out=C)                     # du^2
    np.multiply(C, -1.0 / (P["eye_hw"] ** 2), out=D)
    D += 1.0                                     # q
    np.abs(B, out=E)
    E *= px
    E -= 0.5                                     # |dv| px - 1/2
    np.multiply(D, (P["eye_hh"] + 0.8) * px, out=M1)
    M1 -= E
    np.clip(M1, 0.0, 1.0, out=M1)
    _blend(img, M1, P["lid"] * skin, M2)         # lids (dark rim)
    np.multiply(D, P["eye_hh"] * px, out=M1)
    M1 -= E
    np.clip(M1, 0.0, 1.0, out=M1)                # inside the lids
    _blend(img, M1, np.minimum(skin + P["white"], 1.0), M2)
    np.multiply(B, B, out=D)
    C += D                                       # squared distance to the eye centre
    _disc(C, P["iris_r"], px, M2)
    M2 *= M1
    _blend(img, M2, P["iris"] * skin, D)
    _disc(C, P["pupil_r"], px, M2)
    M2 *= M1
    _blend(img, M2, P["pupil"], D)

    # Eyebrows: segments from the inner to the outer end, on the |u| side.
    ex, ey = b_out_u - b_in_u, b_out_v - b_in_v
    length2 = ex * ex + ey * ey
    np.subtract(au, b_in_u, out=A)
    np.subtract(v, b_in_v, out=B)
    np.multiply(A, ex / length2, out=C)
    np.multiply(B, ey / length2, out=D)
    C += D
    np.clip(C, 0.0, 1.0, out=C)                  # position along the segment
    np.multiply(C, ex, out=D)
    A -= D
    np.multiply(C, ey, out=D)
    B -= D
    A *= A
    B *= B
    A += B                                       # squared distance to the segment
    _blend(img, _disc(A, P["brow_th"], px, M1), P["brow"] * skin, C)

    # Nose: a blob at the tip and two nostrils just below and beside it.
    np.subtract(v, P["nose_v"], out=A)
    np.multiply(A, A, out=B)
    B += u2
    nr = P["nose_r"]
    _blend(img, _disc(B, nr, px, M1), P["nose"] * skin, C)
    A -= 1.0
    A *= A
    np.subtract(au, P["nostril_dx"], out=B)
    B *= B
    B += A
    _blend(img, _disc(B, 0.6 * nr, px, M1), P["nostril"] * skin, C)

    # Mouth: lips between v = mv - top * q and v = mv + bottom * q, q = 1 - (u / hw)^2,
    # and a dark line between them.
    np.multiply(u2, -1.0 / (P["mouth_hw"] ** 2), out=A)
    A += 1.0                                     # q
    np.subtract(v, P["nose_v"] + P["mouth_gap"], out=B)
    B *= px                                      # (v - mv) in pixels
    np.multiply(A, P["lip_top"] * px, out=M1)
    M1 += B
    M1 += 0.5
    np.clip(M1, 0.0, 1.0, out=M1)
    np.multiply(A, P["lip_bottom"] * px, out=M2)
    M2 -= B
    M2 += 0.5
    np.clip(M2, 0.0, 1.0, out=M2)
    M1 *= M2
    _blend(img, M1, P["lips"] * skin, C)
    np.abs(B, out=M2)
    np.subtract(0.6 * px + 0.5, M2, out=M2)
    np.clip(M2, 0.0, 1.0, out=M2)
    M2 *= M1
    _blend(img, M2, P["mouth_line"] * skin, C)

    # Photometry: lighting gradient, contrast, brightness (to 0..255), noise.
    gx = _col(p["light"] * np.cos(p["light_angle"]))
    gy = _col(p["light"] * np.sin(p["light_angle"]))
    np.add((grid[None, None, :] - f32(47.5)) * gx, (grid[None, :, None] - f32(47.5)) * gy, out=A)
    img += A
    contrast = P["contrast"] * 255.0
    sigma = P["noise"] * (255.0 / _BYTE_SUM_SD)
    img *= contrast
    img += (0.5 + P["brightness"]) * 255.0 - 0.5 * contrast - _BYTE_SUM_MEAN * sigma
    bits, lanes = noise_bits, w["lanes"][:n]
    mask = np.uint32(0x00FF00FF)
    np.bitwise_and(bits, mask, out=lanes)
    bits >>= np.uint32(8)
    bits &= mask
    lanes += bits                                # two 16-bit lanes, each a sum of 2 bytes
    np.right_shift(lanes, np.uint32(16), out=bits)
    lanes &= np.uint32(0xFFFF)
    lanes += bits                                # sum of the 4 bytes
    A[...] = lanes
    A *= sigma
    img += A
    np.rint(img, out=img)
    np.clip(img, 0.0, 255.0, out=img)
    return img


_HAIR_GROWTH = 1.08
# Sum of four uniform bytes: mean 4 * 127.5, sd sqrt(4 * (256**2 - 1) / 12).
_BYTE_SUM_MEAN = 510.0
_BYTE_SUM_SD = float(np.sqrt(4 * (256 ** 2 - 1) / 12))


def make_faces(n: int, seed: int = 0, pixel_origin: float = DEFAULT_PIXEL_ORIGIN):
    """``n`` synthetic faces: (images uint8 (n, 9216), keypoints float32 (n, 30) in pixels).

    Keypoint columns follow ``keypoints.FEATURE_NAMES`` (Kaggle's order) in labels of pixel
    origin ``pixel_origin`` (pixel ``i``'s centre at ``i + pixel_origin``; keypoints.py);
    every value lies in [1, 94] + ``pixel_origin``.  Deterministic and prefix-stable in
    ``seed``; the images do not depend on ``pixel_origin``.
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    origin = check_pixel_origin(pixel_origin)
    param_seed, noise_seed = np.random.SeedSequence(seed).spawn(2)
    params = _sample_parameters(np.random.default_rng(param_seed), n)
    noise_rng = np.random.default_rng(noise_seed)
    placement, points = _place(params, _canonical_keypoints(params))
    images = np.empty((n, N_PIXELS), dtype=np.uint8)
    shape = (min(_CHUNK, n), IMAGE_SIDE, IMAGE_SIDE)
    work = {k: np.empty(shape, dtype=np.float32) for k in _BUFFERS}
    work["lanes"] = np.empty(shape, dtype=np.uint32)
    for start in range(0, n, _CHUNK):
        rows = slice(start, min(start + _CHUNK, n))
        bits = noise_rng.integers(0, 2 ** 32, size=(rows.stop - start,) + shape[1:],
                                  dtype=np.uint32)
        img = _render({k: val[rows] for k, val in params.items()},
                      tuple(x[rows] for x in placement), bits, work)
        images[rows] = img.reshape(len(img), N_PIXELS)
    # drawn in 0-based pixel indices; labels add the declared origin
    return images, (points.reshape(n, N_TARGETS) + origin).astype(np.float32)
