"""`kfkd predict clip.mp4`: keypoints on video frames, face tracks, One Euro smoothing, the
annotated copy; on clips built here from NASA's astronaut portrait (public domain,
tests/fixtures/README.md), the head moving and growing along a known straight path.

The model is a ridge regression from pixels to keypoints fitted on crops of this one face
(astronaut.py): it finds this face's points within a fraction of a pixel, so the points
found in each frame can be checked against the true points moved by the known motion.
"""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from kfkd_kit.cli import main
from kfkd_kit.keypoints import FEATURE_NAMES
from kfkd_kit.photo import framing
from kfkd_kit.photo.smoothing import OneEuro, OneEuroFilter
from kfkd_kit.photo.tracking import Tracker, iou
import kfkd_kit.photo.video  # noqa: F401  (first: it sets FFmpeg's log level before any clip)
from kfkd_kit.utils.modelfile import save_model

import astronaut   # tests/photo, on sys.path

FRAMES, FPS, SIZE = 16, 25.0, (256, 224)


def head():
    """(RGB uint8 256x256, keypoints in it as (15, 2) points)."""
    image, keypoints = astronaut.head()
    return image, framing.points(keypoints)


def motion(frame, start=(10.0, 5.0), step=(2.0, 0.7), scale=(0.7, 0.01)):
    """The head's transform (head crop -> frame) in frame ``frame``: it moves and grows
    linearly, so its points move on straight lines at constant speed."""
    s = scale[0] + scale[1] * frame
    return np.array([[s, 0, start[0] + step[0] * frame], [0, s, start[1] + step[1] * frame]])


def place(canvas, image, T):
    import cv2
    width, height = SIZE
    warped = cv2.warpAffine(image, framing.pixel_matrix(T), SIZE, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    inside = cv2.warpAffine(np.full(image.shape[:2], 255, np.uint8), framing.pixel_matrix(T),
                            SIZE, flags=cv2.INTER_LINEAR, borderValue=0)
    return np.where(inside[..., None] > 128, warped, canvas)


def write_clip(path, motions):
    """A clip of FRAMES frames, one head per motion, written with cv2.VideoWriter (mp4v)."""
    import cv2
    image, _ = head()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    for frame in range(FRAMES):
        canvas = np.empty((SIZE[1], SIZE[0], 3), np.uint8)
        canvas[:] = (90, 110, 130)
        for move in motions:
            canvas = place(canvas, image, move(frame))
        writer.write(np.ascontiguousarray(canvas[..., ::-1]))
    writer.release()
    return path


def truth(frame, move=motion):
    return framing.apply(move(frame), head()[1])


def points_of(row):
    return framing.points(np.array([row[f] for f in FEATURE_NAMES], dtype=float))


def count_frames(path):
    import cv2
    capture = cv2.VideoCapture(str(path))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    return frames


@pytest.fixture(scope="module")
def ridge(tmp_path_factory):
    """The ridge regression on crops of the astronaut's face (astronaut.py), saved with its
    JSON and layout."""
    return astronaut.save_ridge_model(tmp_path_factory.mktemp("model") / "ridge.joblib")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", [motion])


# --------------------------------------------------------------------------- units

def test_one_euro_filter_steadies_a_still_point_and_follows_a_moving_one():
    rng = np.random.default_rng(0)
    t = np.arange(90) / 30.0
    still = 50 + rng.normal(0, 1.0, (90, 30))                       # jitter of 1 px
    f = OneEuroFilter()
    out = np.array([f(x, time, scale=80) for x, time in zip(still, t)])
    assert np.std(out[30:] - 50) < 0.5 * np.std(still[30:] - 50)
    jitter = lambda a: np.sqrt(np.mean(np.diff(a, 2, axis=0) ** 2))  # noqa: E731
    assert jitter(out) < 0.2 * jitter(still)
    # a face moving at 2 face widths a second: the filter keeps up within a few pixels,
    # and a larger beta keeps closer
    moving = 50 + 160 * t[:, None] + rng.normal(0, 1.0, (90, 30))
    lags = []
    for beta in (0.0, 5.0):
        f = OneEuroFilter(OneEuro(beta=beta))
        out = np.array([f(x, time, scale=80) for x, time in zip(moving, t)])
        lags.append(np.abs(out[45:] - (50 + 160 * t[45:, None])).mean())
    assert lags[1] < 4.0 and lags[1] < 0.5 * lags[0]
    with pytest.raises(ValueError, match="min_cutoff > 0"):
        OneEuro(min_cutoff=0)


def test_tracker_keeps_ids_by_overlap_and_ends_lost_tracks():
    np.testing.assert_allclose(iou([[0, 0, 10, 10]], [[5, 0, 10, 10], [20, 20, 5, 5]]),
                               [[1 / 3, 0.0]])
    tracker = Tracker(max_missed=2)
    # two faces moving towards each other, given in either order: each keeps its id
    assert tracker.update([[0, 0, 40, 40], [100, 0, 40, 40]]) == [0, 1]
    assert tracker.update([[88, 0, 40, 40], [12, 0, 40, 40]]) == [1, 0]
    assert tracker.update([[24, 0, 40, 40], [76, 0, 40, 40]]) == [0, 1]
    # face 1 is gone for two frames and comes back where its motion took it: still 1
    assert tracker.update([[36, 0, 40, 40]]) == [0]
    assert tracker.update([[48, 0, 40, 40]]) == [0]
    assert tracker.update([[60, 0, 40, 40], [40, 0, 40, 40]]) == [0, 1]
    # gone for more than max_missed frames: a face there later is a new track
    for _ in range(3):
        tracker.update([[60, 0, 40, 40]])
    assert tracker.update([[60, 0, 40, 40], [20, 100, 40, 40]]) == [0, 2]
    assert tracker.started == 3


def test_an_annotated_video_is_whole_or_not_there(clip, tmp_path, monkeypatch):
    from kfkd_kit.photo import video
    out = tmp_path / "drawn.mp4"
    out.write_bytes(b"the old file")
    calls = []

    def fails_on_the_fourth_frame(bgr, rows, origin):
        calls.append(1)
        if len(calls) == 4:
            raise OSError("disk full")
        return bgr

    monkeypatch.setattr(video, "draw_faces", fails_on_the_fourth_frame)
    with pytest.raises(OSError, match="disk full"):
        video.write_annotated_video(clip, [], out)
    assert out.read_bytes() == b"the old file" and list(tmp_path.iterdir()) == [out]
    monkeypatch.undo()
    video.write_annotated_video(clip, [], out)
    assert count_frames(out) == FRAMES and list(tmp_path.iterdir()) == [out]


# --------------------------------------------------------------------------- end to end

@pytest.mark.slow
def test_a_clip_gives_one_row_per_frame_on_one_track_that_follows_the_face(ridge, clip, tmp_path,
                                                                           capsys):
    out, drawn = tmp_path / "k.csv", tmp_path / "drawn" / "clip-annotated.mp4"
    # Haar: MTCNN (the default for a torch model) takes ~0.3 s a frame on two busy cores
    assert main(["predict", "--model", str(ridge), "--detector", "haar", "--out", str(out),
                 "--annotated", str(drawn), str(clip)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2] == ("1 video read, 16 frames, 16 faces found in 1 track, 0 frames with "
                         "no face") and lines[-1] == str(out)
    table = pd.read_csv(out)
    assert list(table.columns) == ["image", "frame", "time", "face", "x", "y", "w", "h",
                                   "score", *FEATURE_NAMES]
    assert table["frame"].tolist() == list(range(FRAMES))
    np.testing.assert_allclose(table["time"], np.arange(FRAMES) / FPS)
    assert set(table["face"]) == {0} and set(table["image"]) == {str(clip)}
    for _, row in table.iterrows():
        scale = motion(row["frame"])[0, 0]            # px of the frame per px of the head crop
        error = np.sqrt(np.mean(((points_of(row) - truth(row["frame"])) / scale) ** 2))
        assert error < 1.0, (row["frame"], error)
    assert count_frames(drawn) == FRAMES
    assert [p.name for p in drawn.parent.iterdir()] == ["clip-annotated.mp4"]   # no temp file
    import cv2
    capture = cv2.VideoCapture(str(drawn))
    plain = cv2.VideoCapture(str(clip))
    assert np.abs(capture.read()[1].astype(int) - plain.read()[1].astype(int)).max() > 100
    capture.release()
    plain.release()


@pytest.mark.slow
def test_two_faces_keep_two_ids(ridge, tmp_path):
    def left(frame):
        return motion(frame, start=(-5.0, 20.0), step=(-1.5, 0.5), scale=(0.45, 0.0))

    def right(frame):
        return motion(frame, start=(120.0, 10.0), step=(2.0, 0.0), scale=(0.45, 0.005))

    path = write_clip(tmp_path / "two.avi", [left, right])
    out = tmp_path / "k.csv"
    assert main(["predict", "--model", str(ridge), "--detector", "haar", "--out", str(out),
                 str(path)]) == 0
    table = pd.read_csv(out)
    assert len(table) == 2 * FRAMES and table.groupby("frame").size().eq(2).all()
    ids = {}
    for _, row in table.iterrows():
        which = "left" if row["x"] < SIZE[0] / 2 - 20 else "right"
        ids.setdefault(which, set()).add(row["face"])
        move = left if which == "left" else right
        error = np.sqrt(np.mean(((points_of(row) - truth(row["frame"], move)) / 0.45) ** 2))
        assert error < 1.5, (which, row["frame"], error)
    assert ids == {"left": {0}, "right": {1}} or ids == {"left": {1}, "right": {0}}


class Jittery:
    """A backend around another that adds 1.5 px of noise to every keypoint it gives."""

    def __init__(self, backend, seed=0):
        self.backend, self.layout = backend, backend.layout
        self.rng = np.random.default_rng(seed)

    def __call__(self, crops):
        found = self.backend(crops)
        return found + self.rng.normal(0, 1.5, found.shape)


@pytest.mark.slow
def test_smoothing_steadies_a_jittery_track_and_stays_on_the_face(ridge, clip):
    from kfkd_kit.photo.align import SavedModel
    from kfkd_kit.photo.video import predict_videos
    from kfkd_kit.utils.modelfile import load_model
    model = load_model(ridge)
    found = {}
    for smooth in (None, OneEuro()):
        rows, _ = predict_videos([clip], Jittery(SavedModel(model)), detector="haar",
                                 smooth=smooth)
        found[smooth is not None] = np.array([points_of(row) for row in rows])
    truths = np.array([truth(frame) for frame in range(FRAMES)])
    # frame-to-frame jitter: the second differences (the true points move at constant speed,
    # ~0.8 face widths a second, so the filter opens up to follow them: less than the
    # unit test's still point gains, but clearly steadier)
    jitter = {k: np.sqrt(np.mean(np.diff(v, 2, axis=0) ** 2)) for k, v in found.items()}
    assert jitter[True] < 0.65 * jitter[False], jitter
    # the first frame passes unchanged; later ones stay near the moving face
    np.testing.assert_allclose(found[True][0], found[False][0])
    assert np.sqrt(np.mean((found[True] - truths) ** 2)) < 3.0


@pytest.mark.slow
def test_bad_videos_and_mixed_inputs_are_one_line_errors(ridge, clip, tmp_path, capfd):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video\n")
    Image.fromarray(head()[0]).save(tmp_path / "head.png")
    cut = tmp_path / "cut.mp4"                       # the first third of a clip
    cut.write_bytes(clip.read_bytes()[:clip.stat().st_size // 3])
    cases = [([bad], "notes.mp4: not a video OpenCV can read"),
             ([cut], "cut.mp4: "),
             ([clip, "--annotated", clip], "would replace the video it is drawn from"),
             ([clip, bad], "notes.mp4: not a video OpenCV can read"),
             ([clip, tmp_path / "head.png"], "give photos or videos, not both"),
             ([tmp_path / "head.png", "--smooth"], "--smooth steadies the keypoints of videos"),
             ([clip, clip, "--annotated", tmp_path / "one.mp4"], "names one file, for 2 videos")]
    capfd.readouterr()
    for inputs, message in cases:
        out = tmp_path / "k.csv"
        code = main(["predict", "--model", str(ridge), "--detector", "haar", "--out", str(out),
                     *map(str, inputs)])
        err = capfd.readouterr().err                 # FFmpeg's own lines too
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert err.startswith("kfkd predict: error: "), err
        assert not out.exists() and not (tmp_path / "one.mp4").exists()


@pytest.mark.slow
def test_an_onnx_model_predicts_a_video_without_torch(clip, tmp_path):
    """The video path (OpenCV, scipy's assignment, onnxruntime) never imports torch."""
    import json
    import os
    import subprocess
    import sys

    from kfkd_kit import configs
    from kfkd_kit.data.synthetic import make_faces
    from kfkd_kit.meta.onnxexport import export_onnx
    X, y = make_faces(96, seed=0)
    model = configs.build("net1", epochs=1, device="cpu", precision="fp32", verbose=0).fit(X, y)
    framing.attach_layout(model, y)
    save_model(model, tmp_path / "tiny.joblib", {"net": "net1"})
    onnx_path = export_onnx(tmp_path / "tiny.joblib", say=lambda *a: None)
    out = tmp_path / "k.csv"
    root = astronaut.ROOT
    script = ("import sys; from kfkd_kit.cli import main; "
              f"code = main(['predict', '--model', {str(onnx_path)!r}, '--smooth', '--out', "
              f"{str(out)!r}, {str(clip)!r}]); "
              "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(code)")
    run = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(root)), timeout=300)
    assert run.returncode == 0, run.stderr
    table = pd.read_csv(out)
    assert table["frame"].tolist() == list(range(FRAMES)) and set(table["face"]) == {0}
    assert json.loads((tmp_path / "tiny.json").read_text())["onnx_file"]["file"] == "tiny.onnx"
