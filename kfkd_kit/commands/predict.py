"""`kfkd predict`: keypoints on your own photos or videos, as a CSV (and copies with the
faces drawn).

The alignment (detect, frame, predict, re-align) is photo/align.py's; the drawing
photo/annotate.py's; videos (frames, tracks, smoothing, drawing) photo/video.py's. This
module picks the backend for the model file (a saved model through torch, or an ``.onnx``
file through onnxruntime, without importing torch), calls them and writes the files.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..photo import framing
from ..photo.align import COLUMNS, MIN_SIZE, SavedModel, predict_photos
from . import _options


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
        model = load_model(path, trust=trust)
        if tta:
            from ..meta.tta import flip_tta
            backend = SavedModel(flip_tta(model, shift=tta_shift), layout=framing.layout_of(model))
        else:
            backend = SavedModel(model)
    if data_dir is not None:
        from ..data import load_training
        backend.layout = framing.mean_layout(load_training(data_dir).y)
    if backend.layout is None:
        raise ValueError(f"{path}: the model carries no mean keypoint layout (saved before "
                         "kfkd_kit stored one, or not by kfkd train); retrain it, or pass "
                         "--data FOLDER with the training data to measure it from")
    return backend


# --------------------------------------------------------------------------- outputs

def write_keypoints_csv(rows, path, columns=COLUMNS) -> Path:
    """The rows as a CSV with ``columns``, written atomically (header only when no face)."""
    import pandas as pd
    from ..utils.atomic import write_csv
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([{k: row[k] for k in columns} for row in rows], columns=list(columns))
    return write_csv(path, frame)


def run_predict(inputs, model, out="keypoints.csv", annotated=None, tta=False, trust=False,
                detector="auto", passes=None, min_size=MIN_SIZE, data_dir=None, say=print,
                tta_shift=0, smooth=False):
    """`kfkd predict`: read, detect, frame, predict; CSV (and annotated photos or videos).
    Returns the summary. ValueError (exit 2) when no image could be read at all, for a video
    that cannot be read, and for photos and videos together."""
    from ..photo.photos import list_images
    from ..photo.video import split_inputs
    photos, videos = split_inputs(inputs)
    if smooth and not videos:
        raise ValueError("--smooth steadies the keypoints of videos; no video given")
    paths = videos or list_images(photos)
    if not paths:
        raise ValueError(f"no image files in {', '.join(map(str, inputs))}")
    keypoints = load_keypoints(model, trust=trust, tta=tta, data_dir=data_dir, tta_shift=tta_shift)
    if detector == "auto":
        detector = "haar" if Path(model).suffix == ".onnx" else "mtcnn"
    warn = lambda message: print(f"kfkd predict: {message}", file=sys.stderr)  # noqa: E731
    if videos:
        return _run_videos(videos, keypoints, out, annotated, detector, passes, min_size,
                           smooth, warn, say)
    rows, summary = predict_photos(paths, keypoints, detector=detector, passes=passes,
                                   min_size=min_size, warn=warn)
    if not summary.photos:
        raise ValueError(f"no image could be read ({summary.unreadable} "
                         f"file{'s' if summary.unreadable != 1 else ''} tried)")
    path = write_keypoints_csv(rows, out)
    if annotated:
        from ..photo.annotate import write_annotated
        write_annotated(paths, rows, annotated)
    say(summary.line())
    say(str(path))
    return summary


def _run_videos(videos, keypoints, out, annotated, detector, passes, min_size, smooth, warn,
                say):
    from ..photo import video
    from ..photo.smoothing import OneEuro
    targets = video.annotated_paths(videos, annotated) if annotated else []
    rows, summary = video.predict_videos(videos, keypoints, detector=detector, passes=passes,
                                         min_size=min_size, smooth=OneEuro() if smooth else None,
                                         warn=warn)
    path = write_keypoints_csv(rows, out, video.VIDEO_COLUMNS)
    for clip, target in zip(videos, targets):
        video.write_annotated_video(clip, rows, target)
    say(summary.line())
    say(str(path))
    return summary


def add_parser(sub):
    p = _options.command_parser(sub, "predict")
    p.add_argument("images", nargs="+", metavar="PHOTO_OR_FOLDER_OR_VIDEO",
                   help="image files, or folders (the images directly in them); or video "
                        "files (.mp4 .avi .mov .mkv .webm), one row per face per frame")
    _options.add_model(p, "a saved model (.joblib, .skops) or an exported .onnx")
    _options.add_out(p, "keypoints.csv", "the CSV of the keypoints")
    p.add_argument("--annotated", default=None, metavar="DIR",
                   help="also write each photo (video) with its boxes and keypoints drawn into "
                        "DIR; for one video, a file such as out.mp4 (default: none)")
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
    p.add_argument("--smooth", action="store_true",
                   help="videos: steady each face's points with a One Euro filter")
    _options.add_trust(p)
    p.set_defaults(func=run)


def run(args):
    run_predict(args.images, args.model, out=args.out, annotated=args.annotated, tta=args.tta,
                trust=args.trust_model, detector=args.detector, passes=args.passes,
                min_size=args.min_size, data_dir=args.data, tta_shift=args.tta_shift,
                smooth=args.smooth)
