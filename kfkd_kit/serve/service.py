"""The model behind `kfkd serve`: loaded once, then keypoints for uploaded images, in memory.

``KeypointService`` holds the backend (meta/photomodel.py: onnxruntime for an ``.onnx`` file,
without torch; the saved model otherwise), the detector and the photo pipeline's settings,
and answers with the same content as `kfkd predict`'s CSV, as JSON: per image, per face, the
box, every other column of ``align.COLUMNS`` (a detector's score, say) under its own name, and
the 15 named keypoints in the photo's pixels. The JSON is built from ``COLUMNS`` generically,
so a column added there flows through unchanged.
"""
from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

from ..keypoints import FEATURE_NAMES
from ..photo import align

__all__ = ["KeypointService", "image_json", "face_json", "MAX_PIXELS"]

# An upload whose header declares more pixels is refused before it is decoded. 50 million
# covers a 48-megapixel phone photo (8000x6000); decoded, the pipeline holds ~7 bytes a pixel.
MAX_PIXELS = 50_000_000


def _plain(value):
    """A JSON-ready scalar: numpy numbers as Python's, NaN and infinities as null."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def face_json(row: dict, columns=None) -> dict:
    """One face row (``align.COLUMNS``' keys) as JSON: ``box`` {x, y, w, h}, ``keypoints``
    {name: {x, y}} in the photo's pixels, and every other column but ``image`` by its name."""
    columns = align.COLUMNS if columns is None else columns
    features = set(FEATURE_NAMES)
    face = {"box": {}, "keypoints": {}}
    for column in columns:
        if column == "image" or column not in row:
            continue
        value = _plain(row[column])
        if column in align.BOX_COLUMNS:
            face["box"][column] = value
        elif column in features:                     # left_eye_center_x -> left_eye_center.x
            face["keypoints"].setdefault(column[:-2], {})[column[-1]] = value
        else:
            face[column] = value
    return face


def image_json(name: str, size, rows, columns=None) -> dict:
    """One image's answer: its name, width and height, and its faces left to right."""
    return {"image": name, "width": int(size[0]), "height": int(size[1]),
            "faces": [face_json(row, columns) for row in rows]}


class KeypointService:
    """A model file served: ``info`` (what `GET /v1/model` answers) and ``keypoints`` (what
    `POST /v1/keypoints` answers), thread-confined to the one worker that calls it.

    ``detector``: auto (mtcnn; for an ``.onnx`` model, which then runs without torch, MTCNN's
    nets exported beside it, or haar where it has none), mtcnn or haar; ``tta``,
    ``tta_shift``, ``passes``, ``min_size``, ``min_score``, ``trust`` and ``data_dir`` as for
    `kfkd predict`; ``max_pixels``: the largest image decoded."""

    def __init__(self, model_path, detector="auto", tta=False, tta_shift=0, passes=None,
                 min_size=align.MIN_SIZE, trust=False, data_dir=None, max_pixels=MAX_PIXELS,
                 min_score=align.MIN_SCORE):
        from ..meta.photomodel import load_keypoints
        from ..utils.modelfile import json_path, read_record, sha256_of
        self.path = Path(model_path)
        self.backend = load_keypoints(self.path, trust=trust, tta=tta, data_dir=data_dir,
                                      tta_shift=tta_shift)
        onnx = self.path.suffix == ".onnx"
        from ..meta.photomodel import pick_detector
        from ..photo.faces import make_detector
        find = pick_detector(self.backend, detector, min_size)
        # made once, used by every call (MTCNN loads its weights once)
        self.find = make_detector(find, min_size) if isinstance(find, str) else find
        self.detector = self.find.name
        self.passes, self.min_size, self.max_pixels = passes, min_size, max_pixels
        self.min_score = min_score
        self.sha256 = sha256_of(self.path)
        self.info = {"name": self.path.name, "sha256": self.sha256,
                     "backend": "onnxruntime" if onnx else "torch",
                     "detector": self.detector, "tta": bool(tta or tta_shift),
                     "tta_shift": tta_shift, "min_score": min_score,
                     "columns": list(align.COLUMNS),
                     "record": read_record(json_path(self.path))}

    def decode(self, uploads):
        """[(name, bytes)] -> decoded photos; the first that cannot be read raises
        photos.PhotoError (PhotoTooLarge past ``max_pixels``), one line naming it."""
        from ..photo.photos import decode_photo
        return [decode_photo(data, name, self.max_pixels) for name, data in uploads]

    def keypoints(self, uploads) -> dict:
        """The answer for [(name, bytes)]: every image's faces, and the model's name and
        sha256. All the images are read before any is predicted: one bad one refuses the
        request, whole."""
        photos = self.decode(uploads)
        # each photo named by its position, so that two uploads of one name stay apart
        numbered = [dataclasses.replace(photo, path=str(i)) for i, photo in enumerate(photos)]
        rows, _ = align.predict_photos(numbered, self.backend, detector=self.find,
                                       passes=self.passes, min_size=self.min_size,
                                       min_score=self.min_score,
                                       warn=lambda message: print(message, file=sys.stderr))
        by_image = {str(i): [] for i in range(len(photos))}
        for row in rows:
            by_image[row["image"]].append(row)
        images = []
        for i, photo in enumerate(photos):
            named = [{**row, "image": photo.path} for row in by_image[str(i)]]
            images.append(image_json(photo.path, photo.size, named))
        return {"model": {"name": self.info["name"], "sha256": self.sha256},
                "columns": list(align.COLUMNS), "images": images}
