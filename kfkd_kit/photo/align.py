"""Keypoints on your own photos (`kfkd predict`): iterative face alignment.

For every photo (photos.py): find the faces (faces.py), skip those narrower than
``min_size`` pixels, and frame each one as the training faces are framed (framing.py):

1. the detector gives a first crop: MTCNN's five landmarks put on the model's mean layout
   (a similarity transform), or Haar's box mapped to where Kaggle's frame lies around such a
   box (HAAR_FRAME);
2. the net predicts the 15 keypoints in that 96x96 crop; they are mapped back to the photo,
   and the similarity transform (rotation, scale, shift) that puts them on the mean layout
   gives the next crop; ``passes`` crops in all (PASSES by default, by detector: what paid
   on benchmarks/photo_set.py);
3. the last pass's keypoints, mapped back to the photo with the inverse transform, are
   the answer.

Faces from all photos are predicted together, in chunks of CHUNK faces (so a net sees
full batches), through a keypoints backend, any callable crops (n, 96, 96) -> (n, 30) pixels with a
``layout`` and a ``pixel_origin`` (the convention of both, keypoints.py; a backend without
one is read as ``LEGACY_PIXEL_ORIGIN``): ``SavedModel`` around a fitted model (torch), or
``onnxmodel.OnnxKeypoints`` around an exported ``.onnx`` file (onnxruntime; this module then
never imports torch). The crops are cut in framing's working coordinates; the answers (the
keypoints and the box) are in the backend's pixel origin, as its training labels were.
``predict_photos(paths, keypoints)`` returns the rows and a summary; commands/predict.py
writes them. ``Aligner`` does the same passes for faces of images already in memory (video
frames, video.py).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

from ..keypoints import FEATURE_NAMES, IMAGE_SIDE, LEGACY_PIXEL_ORIGIN
from . import framing

__all__ = ["predict_photos", "Aligner", "SavedModel", "Summary", "PASSES", "CHUNK", "MIN_SIZE",
           "MIN_SCORE", "BOX_COLUMNS", "COLUMNS"]

# Crops per face by default, by detector: what paid on benchmarks/photo_set.py (see docs/USAGE.md, predict).
PASSES = {"mtcnn": 1, "haar": 3}
CHUNK = 512
MIN_SIZE = 40
# Faces whose detector score is below this are dropped (0: none; see faces.py for what each
# detector's score is).
MIN_SCORE = 0.0
# A pass may change the crop's scale by at most this factor, and move its centre by at most
# this share of its side, from the pass before; a wilder fit (a net lost on a non-face)
# keeps the crop it had.
MAX_SCALE_STEP = 1.5
MAX_SHIFT_STEP = 0.35
BOX_COLUMNS = ("x", "y", "w", "h")
COLUMNS = ("image", "face", *BOX_COLUMNS, "score", *FEATURE_NAMES)


class SavedModel:
    """A fitted keypoint model (modelfile.load_model, flip TTA around it when wanted) as a
    backend: ``obj(crops)`` -> (n, 30) keypoints in pixels for crops (n, 96, 96).
    ``layout``: the mean keypoint layout to frame faces with (default: the model's own);
    ``pixel_origin``: the convention of the model's keypoints and layout (default: the one
    stored beside the layout, ``framing.origin_of``)."""

    def __init__(self, model, layout=None, pixel_origin=None):
        self.layout = framing.layout_of(model) if layout is None else layout
        self.pixel_origin = framing.origin_of(model) if pixel_origin is None else float(pixel_origin)
        self.model = model

    def __call__(self, crops) -> np.ndarray:
        crops = np.asarray(crops, dtype=np.float32)
        return np.asarray(self.model.predict(crops.reshape(len(crops), -1)), dtype=np.float64)


def plural(n, word) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


@dataclass
class FaceCounts:
    """What photo and video summaries both count: faces found, and those left out."""
    faces: int = 0
    no_face: int = 0
    too_small: int = 0
    low_score: int = 0
    min_size: float = MIN_SIZE
    min_score: float = MIN_SCORE

    def keep(self, found) -> list:
        """The faces of one photo or frame that are ``min_size`` wide or wider and score
        ``min_score`` or more, in order; those left out, and a photo left with none,
        counted."""
        faces = [f for f in found if f.width >= self.min_size]
        self.too_small += len(found) - len(faces)
        scored = [f for f in faces if f.score >= self.min_score]
        self.low_score += len(faces) - len(scored)
        self.no_face += not scored
        return scored

    def left_out(self) -> str:
        """The faces left out, as a summary's line ends."""
        text = ""
        if self.too_small:
            text += f" ({plural(self.too_small, 'face')} under {self.min_size:g} px skipped)"
        if self.low_score:
            text += (f" ({plural(self.low_score, 'face')} scored under "
                     f"{self.min_score:g} dropped)")
        return text


@dataclass
class Summary(FaceCounts):
    files: int = 0
    photos: int = 0
    unreadable: int = 0

    def line(self) -> str:
        return (f"{plural(self.photos, 'photo')} read, {plural(self.faces, 'face')} found, "
                f"{plural(self.no_face, 'photo')} with no face, "
                f"{plural(self.unreadable, 'file')} could not be read" + self.left_out())


@dataclass
class _Pending:
    """A face waiting for the net: where it is in the output, its patch and transforms."""
    row: dict
    patch: framing.FacePatch
    transform: np.ndarray
    history: list = field(default_factory=list)

    def __post_init__(self):
        self.first = self.transform


def predict_photos(paths, keypoints, detector="mtcnn", passes=None, min_size=MIN_SIZE,
                   warn=None, record_passes=False, min_score=MIN_SCORE):
    """Keypoints of every face in the photos ``paths``: files, as given, or ``photos.Photo``
    objects already decoded (``photos.decode_photo``: an upload, never written to disk),
    whose ``path`` then names them in the rows.

    Returns (rows, summary): ``rows`` a list of dicts with COLUMNS' keys, photo by photo in
    the order given and each photo's faces left to right; ``summary`` counts photos, faces,
    photos with no face, files that could not be read (each one also given to ``warn``, a
    one-line message naming it), faces narrower than ``min_size`` pixels and faces whose
    detector score is under ``min_score`` (both left out of the rows). ``detector``: a name
    (faces.DETECTORS) or a detector already made (faces.make_detector's kind). With
    ``record_passes`` each row also holds ``passes``, the keypoints of every pass (passes, 30),
    and ``first`` and ``last``, the first and the last crop's transforms.
    """
    from ..utils import progress
    from .faces import make_detector
    from .photos import Photo, PhotoError, read_photo
    warn = warn or (lambda message: print(message, file=sys.stderr))
    find = make_detector(detector, min_size) if isinstance(detector, str) else detector
    passes = PASSES.get(find.name, 1) if passes is None else passes
    if passes < 1:
        raise ValueError(f"--passes must be 1 or more, got {passes}")
    origin = float(getattr(keypoints, "pixel_origin", LEGACY_PIXEL_ORIGIN))
    layout = framing.to_work(keypoints.layout, origin)
    summary = Summary(files=len(paths), min_size=min_size, min_score=min_score)
    rows, pending = [], []
    with progress.bar(total=len(paths), desc="photos", unit="photo") as bar:
        for path in paths:
            try:
                photo = path if isinstance(path, Photo) else read_photo(path)
            except PhotoError as exc:
                summary.unreadable += 1
                bar.clear()
                warn(f"skipped {exc}")
                bar.update(1)
                continue
            summary.photos += 1
            found = sorted(find(photo), key=lambda f: f.box[0] + f.box[2] / 2)
            faces = summary.keep(found)
            for number, face in enumerate(faces):
                transform = find.first_crop(face, layout)
                row = {"image": photo.path, "face": number, **face_fields(face, origin)}
                rows.append(row)
                pending.append(_Pending(row, framing.FacePatch(photo.grey, transform), transform))
            summary.faces += len(faces)
            if len(pending) >= CHUNK:
                _align(pending, keypoints, layout, passes, record_passes, origin)
                pending = []
            bar.update(1)
    if pending:
        _align(pending, keypoints, layout, passes, record_passes, origin)
    return rows, summary


def face_fields(face, origin) -> dict:
    """A detected face's columns of a row: its box (x, y, w, h; the corner in pixel origin
    ``origin``, the backend's) and its detector score."""
    corner = framing.from_work(face.box[:2], origin)
    return {**dict(zip(BOX_COLUMNS, np.round([*corner, *face.box[2:]], 2))),
            "score": round(float(face.score), 4)}


def _align(pending, keypoints, layout, passes, record_passes, origin=LEGACY_PIXEL_ORIGIN):
    """Run the passes for a chunk of faces, all faces in one call to the net per pass;
    ``layout`` in working coordinates, the backend's keypoints in pixel origin ``origin``."""
    target = framing.points(layout)
    for number in range(passes):
        crops = np.stack([face.patch.crop(face.transform) for face in pending])
        predicted = framing.points(framing.to_work(keypoints(crops), origin))   # (n, 15, 2)
        for face, points in zip(pending, predicted):
            in_photo = framing.apply(framing.invert(face.transform), points)
            face.history.append(framing.from_work(in_photo.reshape(-1), origin))
            if number < passes - 1:
                face.transform = next_transform(face.transform, in_photo, target)
    for face in pending:
        face.row.update(zip(FEATURE_NAMES, np.round(face.history[-1], 3)))
        if record_passes:
            face.row["passes"] = np.array(face.history)
            face.row["first"] = face.first
            face.row["last"] = face.transform


class Aligner:
    """The in-memory entry point (video frames, arrays): faces added one at a time, each with
    its image's grey levels (float, (h, w)) and first crop transform. A face keeps only its
    patch (framing.FacePatch), not the image, and the net sees ``chunk`` faces at a time.
    ``add`` and ``flush`` return the rows whose keypoints they filled in."""

    def __init__(self, keypoints, passes=1, chunk=CHUNK):
        if passes < 1:
            raise ValueError(f"--passes must be 1 or more, got {passes}")
        self.keypoints, self.passes, self.chunk = keypoints, passes, chunk
        self.origin = float(getattr(keypoints, "pixel_origin", LEGACY_PIXEL_ORIGIN))
        self.layout = framing.to_work(keypoints.layout, self.origin)   # for first crops
        self.pending = []

    def add(self, row, grey, transform) -> list:
        self.pending.append(_Pending(row, framing.FacePatch(grey, transform), transform))
        return self.flush() if len(self.pending) >= self.chunk else []

    def flush(self) -> list:
        done, self.pending = self.pending, []
        if done:
            _align(done, self.keypoints, self.layout, self.passes, False, self.origin)
        return [face.row for face in done]


def next_transform(current, in_photo, target):
    """The similarity transform that puts ``in_photo`` on ``target``, unless it strays too
    far from ``current`` (then ``current``)."""
    try:
        proposed = framing.fit_similarity(in_photo, target)
    except ValueError:
        return current
    if not np.isfinite(proposed).all():
        return current
    step = framing.scale_of(proposed) / framing.scale_of(current)
    centre = np.array([[(IMAGE_SIDE + 1) / 2] * 2])
    moved = np.linalg.norm(framing.apply(framing.invert(proposed), centre)
                           - framing.apply(framing.invert(current), centre))
    side = IMAGE_SIDE / framing.scale_of(current)
    if not (1 / MAX_SCALE_STEP <= step <= MAX_SCALE_STEP) or moved > MAX_SHIFT_STEP * side:
        return current
    return proposed
