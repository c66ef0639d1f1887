"""Keypoints on video files (`kfkd predict clip.mp4`): every frame's faces, tracked.

A file is a video by its ending (VIDEO_SUFFIXES); OpenCV's VideoCapture reads it. Each frame
is a photo in memory: its faces are found as in a photo (faces.py, the same detector for the
whole run), matched to the faces of the frames before (tracking.py: a face keeps its id while
it stays in view), and aligned as photo faces are (align.Aligner: the same passes; faces of
many frames go to the net together, ``CHUNK`` at a time). ``--smooth`` then steadies each
track's points (smoothing.py). Rows are one per face per frame, with VIDEO_COLUMNS: the
video's path, the frame's index and time (index / the file's frame rate), the track id, the
box and the 30 keypoints in the frame's pixels (Kaggle's coordinates, as for photos).

``write_annotated_video`` reads the video again and writes it with each face drawn (box,
points, id), as mp4v, atomically.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..keypoints import FEATURE_NAMES, LEGACY_PIXEL_ORIGIN
from .align import BOX_COLUMNS, MIN_SCORE, MIN_SIZE, PASSES, Aligner, FaceCounts, face_fields, plural

__all__ = ["VIDEO_SUFFIXES", "VIDEO_COLUMNS", "VideoError", "VideoSummary", "is_video",
           "split_inputs", "open_video", "check_video", "predict_videos", "annotated_paths",
           "write_annotated_video"]

# FFmpeg (inside OpenCV) prints its own lines for a bad file ("moov atom not found"); the
# error here names the file in one line instead. Read once, at OpenCV's first FFmpeg use;
# set it yourself to see FFmpeg's messages (e.g. 32).
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
VIDEO_COLUMNS = ("image", "frame", "time", "face", *BOX_COLUMNS, "score", *FEATURE_NAMES)
# Faces waiting for the net: a full batch or two for the net, and each face's patch (a few
# hundred kB) is all that is kept of its frame meanwhile.
CHUNK = 256
# the frame rate written when the file gives none (its time column is then empty)
FALLBACK_FPS = 25.0


class VideoError(ValueError):
    """A file that is not a readable video; the message is one line naming it."""


def is_video(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def split_inputs(inputs):
    """(photos and folders, videos) of the paths on a command line. ValueError, one line,
    when both are given: their CSVs have different columns."""
    videos = [str(p) for p in inputs if is_video(p) and not Path(p).is_dir()]
    others = [str(p) for p in inputs if str(p) not in videos]
    if videos and others:
        raise ValueError(f"give photos or videos, not both, in one call (videos: {videos[0]}"
                         f"{' ...' if len(videos) > 1 else ''}; photos: {others[0]}"
                         f"{' ...' if len(others) > 1 else ''})")
    return others, videos


def open_video(path):
    """(VideoCapture, frames per second or None, frame count or None) of ``path``; a
    VideoError naming it when it is missing or OpenCV cannot read a frame of it."""
    import cv2
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: an empty file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise VideoError(f"{path}: not a video OpenCV can read")
    fps = capture.get(cv2.CAP_PROP_FPS)
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    fps = float(fps) if np.isfinite(fps) and 0 < fps < 10_000 else None
    count = int(count) if np.isfinite(count) and count > 0 else None
    return capture, fps, count


def check_video(path) -> None:
    """VideoError (or FileNotFoundError) naming ``path`` unless a first frame of it reads."""
    capture = open_video(path)[0]
    try:
        ok, frame = capture.read()
    finally:
        capture.release()
    if not ok or frame is None:
        raise VideoError(f"{path}: OpenCV could not read a frame of it")


def _frames(capture):
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok or frame is None:
            return
        yield index, frame
        index += 1


def frame_photo(bgr, name):
    """A BGR frame (OpenCV's) as photos.Photo: RGB for the detector, grey for the net."""
    from .photos import LUMA, Photo
    if bgr.ndim == 2:
        bgr = np.repeat(bgr[..., None], 3, axis=2)
    rgb = np.ascontiguousarray(bgr[..., 2::-1])
    return Photo(path=str(name), grey=rgb.astype(np.float32) @ LUMA, rgb=rgb)


@dataclass
class VideoSummary(FaceCounts):
    videos: int = 0
    frames: int = 0
    tracks: int = 0

    def line(self) -> str:
        return (f"{plural(self.videos, 'video')} read, {plural(self.frames, 'frame')}, "
                f"{plural(self.faces, 'face')} found in {plural(self.tracks, 'track')}, "
                f"{plural(self.no_face, 'frame')} with no face" + self.left_out())


def predict_videos(paths, keypoints, detector="mtcnn", passes=None, min_size=MIN_SIZE,
                   smooth=None, warn=None, tracker_options=None, min_score=MIN_SCORE):
    """Keypoints of every face in every frame of the videos ``paths``.

    Returns (rows, summary): ``rows`` dicts with VIDEO_COLUMNS' keys, video by video, frame
    by frame, each frame's faces by track id; ``keypoints`` a backend as for
    align.predict_photos. ``smooth``: None (raw keypoints) or smoothing.OneEuro settings.
    Every video is opened before any is predicted, so a bad one stops the run at once
    (VideoError naming it). ``tracker_options``: tracking.Tracker's keywords.
    """
    from ..utils import progress
    from .faces import make_detector
    from .tracking import Tracker
    warn = warn or (lambda message: print(message, file=sys.stderr))
    for path in paths:
        check_video(path)
    find = make_detector(detector, min_size) if isinstance(detector, str) else detector
    passes = PASSES.get(find.name, 1) if passes is None else passes
    aligner = Aligner(keypoints, passes, chunk=CHUNK)
    summary = VideoSummary(min_size=min_size, min_score=min_score)
    rows = []
    for path in paths:
        capture, fps, count = open_video(path)
        if fps is None:
            warn(f"{path}: the file gives no frame rate; its time column is left empty")
        tracker = Tracker(**(tracker_options or {}))
        frames = 0
        try:
            with progress.bar(total=count, desc=Path(path).name, unit="frame") as bar:
                for index, bgr in _frames(capture):
                    photo = frame_photo(bgr, path)
                    found = find(photo)
                    faces = summary.keep(found)
                    ids = tracker.update([f.box for f in faces])
                    for track, face in sorted(zip(ids, faces), key=lambda pair: pair[0]):
                        row = {"image": str(path), "frame": index,
                               "time": round(index / fps, 6) if fps else float("nan"),
                               "face": track, **face_fields(face, aligner.origin)}
                        rows.append(row)
                        aligner.add(row, photo.grey, find.first_crop(face, aligner.layout))
                    summary.faces += len(faces)
                    frames += 1
                    bar.update(1)
        finally:
            capture.release()
        if not frames:
            raise VideoError(f"{path}: OpenCV could not read a frame of it")
        if count and frames < count:
            warn(f"{path}: read {frames} of the {count} frames its header gives (truncated?)")
        summary.videos += 1
        summary.frames += frames
        summary.tracks += tracker.started
    aligner.flush()
    if smooth is not None:
        from .smoothing import smooth_tracks
        smooth_tracks(rows, smooth)
    return rows, summary


# --------------------------------------------------------------------------- drawing

def annotated_paths(videos, annotated) -> list[Path]:
    """Where ``--annotated`` puts each video's drawn copy: a file with a video ending for
    one video, else a folder holding ``<name>.mp4`` for each (``-2``, ... for names that
    repeat). ValueError, one line, for a file given with several videos."""
    from .annotate import unique_name
    target = Path(annotated)
    given = {Path(v).resolve() for v in videos}
    if target.resolve() in given:
        raise ValueError(f"--annotated {target} would replace the video it is drawn from")
    if is_video(target) and not target.is_dir():
        if len(videos) != 1:
            raise ValueError(f"--annotated {target} names one file, for {len(videos)} videos; "
                             "give a folder")
        return [target]
    taken, out = set(), []
    for video in videos:
        name = unique_name(Path(video).stem, ".mp4", taken)
        if (target / name).resolve() in given:
            raise ValueError(f"--annotated {target}: {target / name} would replace the video "
                             "it is drawn from")
        out.append(target / name)
    return out


def draw_faces(bgr, rows, origin=LEGACY_PIXEL_ORIGIN):
    """The frame (BGR uint8, changed in place) with each face's box, 15 points and id;
    the rows' coordinates in pixel origin ``origin`` (the backend's, keypoints.py)."""
    import cv2

    from . import framing
    from .annotate import COLOURS
    thick = max(1, round(max(bgr.shape[:2]) / 400))
    for row in rows:
        colour = tuple(int(c) for c in COLOURS[row["face"] % len(COLOURS)][::-1])
        x, y, w, h = (row[k] for k in BOX_COLUMNS)
        # the rows put pixel centres at index + origin; OpenCV's at index
        x, y = x - origin, y - origin
        cv2.rectangle(bgr, (round(x), round(y)), (round(x + w), round(y + h)), colour, thick)
        cv2.putText(bgr, str(row["face"]), (round(x), max(12, round(y - 3))),
                    cv2.FONT_HERSHEY_SIMPLEX, max(0.4, w / 250), colour, thick, cv2.LINE_AA)
        radius = max(2, round(w / 60))
        points = framing.points(np.array([row[k] for k in FEATURE_NAMES], dtype=float))
        for px, py in np.round((points - origin) * 16).astype(int):  # 4 bits of sub-pixel
            cv2.circle(bgr, (int(px), int(py)), radius * 16, colour, -1, cv2.LINE_AA, shift=4)
    return bgr


def write_annotated_video(video, rows, out, origin=LEGACY_PIXEL_ORIGIN) -> Path:
    """``video`` with the faces of ``rows`` (its rows of predict_videos) drawn on each frame,
    as ``out`` (mp4v at the video's frame rate), written atomically."""
    import cv2

    from ..utils import progress
    from ..utils.atomic import atomic_path
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    by_frame = {}
    for row in rows:
        if row["image"] == str(video):
            by_frame.setdefault(row["frame"], []).append(row)
    capture, fps, count = open_video(video)
    writer = None
    try:
        with atomic_path(out) as tmp, progress.bar(total=count, desc=f"drawing {out.name}",
                                                   unit="frame") as bar:
            for index, bgr in _frames(capture):
                if writer is None:
                    height, width = bgr.shape[:2]
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"),
                                             fps or FALLBACK_FPS, (width, height))
                    if not writer.isOpened():
                        raise OSError(f"{out}: OpenCV cannot write an mp4v video here")
                writer.write(draw_faces(bgr, by_frame.get(index, []), origin))
                bar.update(1)
            if writer is None:
                raise VideoError(f"{video}: OpenCV could not read a frame of it")
            writer.release()
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    return out
