"""`kfkd predict`: keypoints on your own photos or videos, as a CSV (and copies with the
faces drawn).

The alignment (detect, frame, predict, re-align) is photo/align.py's; the drawing
photo/annotate.py's; videos (frames, tracks, smoothing, drawing) photo/video.py's; the
backend for the model file (a saved model through torch, or an ``.onnx`` file through
onnxruntime, without importing torch) meta/photomodel.py's. This module calls them and
writes the files.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..meta.photomodel import load_keypoints, pick_detector
from ..photo.align import COLUMNS, MIN_SCORE, MIN_SIZE, predict_photos
from . import _options


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
                tta_shift=0, min_score=MIN_SCORE, smooth=False):
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
    detector = pick_detector(keypoints, detector, min_size)
    warn = lambda message: print(f"kfkd predict: {message}", file=sys.stderr)  # noqa: E731
    if videos:
        return _run_videos(videos, keypoints, out, annotated, detector, passes, min_size,
                           smooth, warn, say, min_score)
    rows, summary = predict_photos(paths, keypoints, detector=detector, passes=passes,
                                   min_size=min_size, warn=warn, min_score=min_score)
    if not summary.photos:
        raise ValueError(f"no image could be read ({summary.unreadable} "
                         f"file{'s' if summary.unreadable != 1 else ''} tried)")
    path = write_keypoints_csv(rows, out)
    if annotated:
        from ..photo.annotate import write_annotated
        write_annotated(paths, rows, annotated, origin=keypoints.pixel_origin)
    say(summary.line())
    say(str(path))
    return summary


def _run_videos(videos, keypoints, out, annotated, detector, passes, min_size, smooth, warn,
                say, min_score):
    from ..photo import video
    from ..photo.smoothing import OneEuro
    targets = video.annotated_paths(videos, annotated) if annotated else []
    rows, summary = video.predict_videos(videos, keypoints, detector=detector, passes=passes,
                                         min_size=min_size, smooth=OneEuro() if smooth else None,
                                         warn=warn, min_score=min_score)
    path = write_keypoints_csv(rows, out, video.VIDEO_COLUMNS)
    for clip, target in zip(videos, targets):
        video.write_annotated_video(clip, rows, target, origin=keypoints.pixel_origin)
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
                   help="auto: mtcnn; for an .onnx model, MTCNN's nets exported beside it "
                        "(onnxruntime, no torch), or haar (OpenCV) where it has none")
    p.add_argument("--passes", type=_options.positive_int, default=None, metavar="N",
                   help="crops per face, each re-aligned on the last one's keypoints "
                        "(default: 1 for mtcnn, 3 for haar)")
    p.add_argument("--min-size", type=float, default=MIN_SIZE, metavar="PX",
                   help="skip (and count) faces narrower than PX pixels")
    p.add_argument("--min-score", type=float, default=MIN_SCORE, metavar="S",
                   help="drop (and count) faces whose detector score (the CSV's score column) "
                        "is under S")
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
                min_score=args.min_score, smooth=args.smooth)
