"""`kfkd predict`: keypoints on your own photos.

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
full batches), through a ``Keypoints`` backend: a saved model (joblib/skops, torch) or an
exported ``.onnx`` file (onnxruntime; this module then never imports torch).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..photo import framing
from ..keypoints import FEATURE_NAMES, IMAGE_SIDE
from . import _options

# Crops per face by default, by detector: what paid on benchmarks/photo_set.py (see docs/USAGE.md, predict).
PASSES = {"mtcnn": 1, "haar": 3}
CHUNK = 512
MIN_SIZE = 40
# A pass may change the crop's scale by at most this factor, and move its centre by at most
# this share of its side, from the pass before; a wilder fit (a net lost on a non-face)
# keeps the crop it had.
MAX_SCALE_STEP = 1.5
MAX_SHIFT_STEP = 0.35
BOX_COLUMNS = ("x", "y", "w", "h")
COLUMNS = ("image", "face", *BOX_COLUMNS, *FEATURE_NAMES)


# --------------------------------------------------------------------------- backends

class SavedModel:
    """A fitted keypoint model (modelfile.load_model), flip TTA around it when asked."""

    def __init__(self, model, tta=False, tta_shift=0):
        self.layout = framing.layout_of(model)
        if tta:
            from ..meta.tta import flip_tta
            model = flip_tta(model, shift=tta_shift)
        self.model = model

    def __call__(self, crops) -> np.ndarray:
        crops = np.asarray(crops, dtype=np.float32)
        return np.asarray(self.model.predict(crops.reshape(len(crops), -1)), dtype=np.float64)


def load_keypoints(model_path, trust=False, tta=False, data_dir=None, tta_shift=0):
    """The backend for ``model_path``: an ``.onnx`` file through onnxruntime (no torch), any
    other through modelfile.load_model. Its mean layout comes with the model; a model saved
    without one (before ``mean_keypoints_``, or not by ``kfkd train``) takes it from the
    training data in ``data_dir``, and without that is refused in one line."""
    path = Path(model_path)
    tta = tta or bool(tta_shift)                 # a shift grid is flip TTA on shifted copies
    if path.suffix == ".onnx":
        from ..photo.onnxmodel import OnnxKeypoints
        backend = OnnxKeypoints(path, trust=trust, tta=tta, tta_shift=tta_shift)
    else:
        from ..utils.modelfile import load_model
        backend = SavedModel(load_model(path, trust=trust), tta=tta, tta_shift=tta_shift)
    if data_dir is not None:
        from ..data import load_training
        backend.layout = framing.mean_layout(load_training(data_dir).y)
    if backend.layout is None:
        raise ValueError(f"{path}: the model carries no mean keypoint layout (saved before "
                         "kfkd_kit stored one, or not by kfkd train); retrain it, or pass "
                         "--data FOLDER with the training data to measure it from")
    return backend


# --------------------------------------------------------------------------- the run

@dataclass
class Summary:
    files: int = 0
    photos: int = 0
    faces: int = 0
    no_face: int = 0
    unreadable: int = 0
    too_small: int = 0
    min_size: float = MIN_SIZE

    def line(self) -> str:
        plural = lambda n, word: f"{n} {word}" + ("" if n == 1 else "s")  # noqa: E731
        text = (f"{plural(self.photos, 'photo')} read, {plural(self.faces, 'face')} found, "
                f"{plural(self.no_face, 'photo')} with no face, "
                f"{plural(self.unreadable, 'file')} could not be read")
        if self.too_small:
            text += (f" ({plural(self.too_small, 'face')} under {self.min_size:g} px "
                     "skipped)")
        return text


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
                   warn=None, record_passes=False):
    """Keypoints of every face in the photos ``paths`` (files, as given).

    Returns (rows, summary): ``rows`` a list of dicts with COLUMNS' keys, photo by photo in
    the order given and each photo's faces left to right; ``summary`` counts photos, faces,
    photos with no face, files that could not be read (each one also given to ``warn``, a
    one-line message naming it) and faces narrower than ``min_size`` pixels. With
    ``record_passes`` each row also holds ``passes``, the keypoints of every pass (passes, 30),
    and ``first``, the first crop's transform.
    """
    from ..utils import progress
    from ..photo.faces import make_detector
    from ..photo.photos import PhotoError, read_photo
    warn = warn or (lambda message: print(message, file=sys.stderr))
    passes = PASSES.get(detector, 1) if passes is None else passes
    if passes < 1:
        raise ValueError(f"--passes must be 1 or more, got {passes}")
    find = make_detector(detector, min_size)
    layout = keypoints.layout
    summary = Summary(files=len(paths), min_size=min_size)
    rows, pending = [], []
    with progress.bar(total=len(paths), desc="photos", unit="photo") as bar:
        for path in paths:
            try:
                photo = read_photo(path)
            except PhotoError as exc:
                summary.unreadable += 1
                bar.clear()
                warn(f"skipped {exc}")
                bar.update(1)
                continue
            summary.photos += 1
            found = sorted(find(photo), key=lambda f: f.box[0] + f.box[2] / 2)
            faces = [f for f in found if f.width >= min_size]
            summary.too_small += len(found) - len(faces)
            summary.no_face += not faces
            for number, face in enumerate(faces):
                transform = find.first_crop(face, layout)
                row = {"image": str(path), "face": number,
                       **dict(zip(BOX_COLUMNS, np.round(face.box, 2)))}
                rows.append(row)
                pending.append(_Pending(row, framing.FacePatch(photo.grey, transform), transform))
            summary.faces += len(faces)
            if len(pending) >= CHUNK:
                _align(pending, keypoints, layout, passes, record_passes)
                pending = []
            bar.update(1)
    if pending:
        _align(pending, keypoints, layout, passes, record_passes)
    return rows, summary


def _align(pending, keypoints, layout, passes, record_passes):
    """Run the passes for a chunk of faces, all faces in one call to the net per pass."""
    target = framing.points(layout)
    for number in range(passes):
        crops = np.stack([face.patch.crop(face.transform) for face in pending])
        predicted = framing.points(keypoints(crops))                       # (n, 15, 2)
        for face, points in zip(pending, predicted):
            in_photo = framing.apply(framing.invert(face.transform), points)
            face.history.append(in_photo.reshape(-1))
            if number < passes - 1:
                face.transform = _next_transform(face.transform, in_photo, target)
    for face in pending:
        face.row.update(zip(FEATURE_NAMES, np.round(face.history[-1], 3)))
        if record_passes:
            face.row["passes"] = np.array(face.history)
            face.row["first"] = face.first


def _next_transform(current, in_photo, target):
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


# --------------------------------------------------------------------------- outputs

def write_keypoints_csv(rows, path) -> Path:
    """The rows as a CSV with COLUMNS, written atomically (header only when no face)."""
    import pandas as pd
    from ..utils.atomic import write_csv
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([{k: row[k] for k in COLUMNS} for row in rows], columns=list(COLUMNS))
    return write_csv(path, frame)


COLOURS = ((255, 64, 64), (64, 200, 255), (255, 210, 0), (120, 255, 120), (255, 120, 255))


def annotate(photo, rows):
    """A copy of the photo (Pillow RGB image) with each face's box and 15 points drawn."""
    from PIL import Image, ImageDraw
    image = Image.fromarray(photo.rgb)
    draw = ImageDraw.Draw(image)
    width = max(2, round(max(image.size) / 300))
    for row in rows:
        colour = COLOURS[row["face"] % len(COLOURS)]
        x, y, w, h = (row[k] for k in BOX_COLUMNS)
        # photo coordinates put pixel centres at index + 1; Pillow's at index (+ 0.5 edges)
        draw.rectangle([x - 1, y - 1, x + w - 1, y + h - 1], outline=colour, width=width)
        radius = max(2.0, w / 45)
        points = framing.points(np.array([row[f] for f in FEATURE_NAMES], dtype=float))
        for px, py in points:
            draw.ellipse([px - 1 - radius, py - 1 - radius, px - 1 + radius, py - 1 + radius],
                         fill=colour, outline=(0, 0, 0))
    return image


def write_annotated(paths, rows, folder, warn=None) -> list[Path]:
    """Each readable photo of ``paths`` with its faces drawn, as ``folder/<name>.jpg``
    (``-2``, ``-3``, ... for photos of the same name), written atomically."""
    import io
    from ..utils.atomic import atomic_write
    from ..photo.photos import PhotoError, read_photo
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_photo = {}
    for row in rows:
        by_photo.setdefault(row["image"], []).append(row)
    written, taken = [], set()
    for path in dict.fromkeys(paths):
        try:
            photo = read_photo(path)
        except PhotoError:
            continue                       # already reported by predict_photos
        stem, number = Path(path).stem, 1
        name = f"{stem}.jpg"
        while name in taken:
            number += 1
            name = f"{stem}-{number}.jpg"
        taken.add(name)
        buffer = io.BytesIO()
        annotate(photo, by_photo.get(str(path), [])).save(buffer, format="JPEG", quality=90)
        with atomic_write(folder / name, "wb") as f:
            f.write(buffer.getvalue())
        written.append(folder / name)
    return written


def run_predict(inputs, model, out="keypoints.csv", annotated=None, tta=False, trust=False,
                detector="auto", passes=None, min_size=MIN_SIZE, data_dir=None, say=print,
                tta_shift=0):
    """`kfkd predict`: read, detect, frame, predict; CSV (and annotated photos). Returns the
    summary. ValueError (exit 2) only when no image could be read at all."""
    from ..photo.photos import list_images
    paths = list_images(inputs)
    if not paths:
        raise ValueError(f"no image files in {', '.join(map(str, inputs))}")
    keypoints = load_keypoints(model, trust=trust, tta=tta, data_dir=data_dir, tta_shift=tta_shift)
    if detector == "auto":
        detector = "haar" if Path(model).suffix == ".onnx" else "mtcnn"
    warn = lambda message: print(f"kfkd predict: {message}", file=sys.stderr)  # noqa: E731
    rows, summary = predict_photos(paths, keypoints, detector=detector, passes=passes,
                                   min_size=min_size, warn=warn)
    if not summary.photos:
        raise ValueError(f"no image could be read ({summary.unreadable} "
                         f"file{'s' if summary.unreadable != 1 else ''} tried)")
    path = write_keypoints_csv(rows, out)
    if annotated:
        write_annotated(paths, rows, annotated)
    say(summary.line())
    say(str(path))
    return summary


def add_parser(sub):
    p = _options.command_parser(sub, "predict")
    p.add_argument("images", nargs="+", metavar="PHOTO_OR_FOLDER",
                   help="image files, or folders (the images directly in them)")
    _options.add_model(p, "a saved model (.joblib, .skops) or an exported .onnx")
    _options.add_out(p, "keypoints.csv", "the CSV of the keypoints")
    p.add_argument("--annotated", default=None, metavar="DIR",
                   help="also write each photo with its boxes and keypoints drawn into DIR "
                        "(default: none)")
    _options.add_tta(p, "flip test-time augmentation, as for submit")
    p.add_argument("--detector", default="auto", choices=("auto", "mtcnn", "haar"),
                   help="auto: mtcnn (facenet-pytorch, needs torch) for a torch model, haar "
                        "(OpenCV) for an .onnx one, which then runs without torch")
    p.add_argument("--passes", type=_options.positive_int, default=None, metavar="N",
                   help="crops per face, each re-aligned on the last one's keypoints "
                        "(default: 1 for mtcnn, 3 for haar)")
    p.add_argument("--min-size", type=float, default=MIN_SIZE, metavar="PX",
                   help="skip (and count) faces narrower than PX pixels")
    p.add_argument("--data", default=None, metavar="FOLDER",
                   help="training data to measure the mean keypoint layout from, for a model "
                        "saved without one (default: none)")
    _options.add_trust(p)
    p.set_defaults(func=run)


def run(args):
    run_predict(args.images, args.model, out=args.out, annotated=args.annotated, tta=args.tta,
                trust=args.trust_model, detector=args.detector, passes=args.passes,
                min_size=args.min_size, data_dir=args.data, tta_shift=args.tta_shift)
