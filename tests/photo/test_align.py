"""photo/align.py and photo/annotate.py used directly, without the CLI: a backend that always
answers the mean layout stands in for a net, so what the passes do is known exactly."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kfkd_kit.keypoints import FEATURE_NAMES
from kfkd_kit.photo import align, framing
from kfkd_kit.photo.annotate import write_annotated

ASTRONAUT = Path(__file__).resolve().parents[1] / "fixtures" / "astronaut.jpg"
# a face-like layout in the 96x96 crop: eyes, brows, nose, mouth (Kaggle's order)
LAYOUT = np.array([66, 38, 30, 38, 60, 38, 73, 38, 37, 38, 23, 38, 57, 29, 80, 31, 39, 29,
                   16, 31, 48, 57, 63, 76, 33, 76, 48, 72, 48, 82], dtype=float)


class Constant:
    """Answers ``layout`` for every crop, and counts the crops it saw."""

    def __init__(self, layout=LAYOUT):
        self.layout, self.crops = layout, 0

    def __call__(self, crops):
        self.crops += len(crops)
        return np.tile(self.layout, (len(crops), 1))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    Image.open(ASTRONAUT).convert("RGB").crop((100, 0, 356, 256)).save(folder / "head.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return [folder / "head.png", folder / "broken.jpg"]


def test_passes_that_agree_keep_the_first_crop_and_map_the_layout_back(photos):
    warned, backend = [], Constant()
    rows, summary = align.predict_photos(photos, backend, detector="haar", passes=3,
                                         warn=warned.append, record_passes=True)
    assert (summary.photos, summary.faces, summary.unreadable, summary.no_face) == (1, 1, 1, 0)
    assert len(warned) == 1 and "broken.jpg" in warned[0]
    (row,) = rows
    assert backend.crops == 3 and row["passes"].shape == (3, 30)
    # the net answers the layout: each pass's crop is the first one again
    expected = framing.apply(framing.invert(row["first"]), framing.points(LAYOUT)).reshape(-1)
    for answer in row["passes"]:
        np.testing.assert_allclose(answer, expected, atol=1e-6)
    np.testing.assert_allclose([row[f] for f in FEATURE_NAMES], expected, atol=1e-3)
    assert set(align.COLUMNS) <= set(row) and row["image"] == str(photos[0])


def test_a_pass_that_strays_too_far_keeps_the_crop_it_had():
    current = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    target = framing.points(LAYOUT)
    near = framing.apply(framing.invert(np.array([[1.1, 0, 2.0], [0, 1.1, -1.0]])), target)
    np.testing.assert_allclose(align.next_transform(current, near, target),
                               [[1.1, 0, 2.0], [0, 1.1, -1.0]], atol=1e-9)
    tiny = framing.apply(framing.invert(np.array([[2.0, 0, 0], [0, 2.0, 0]])), target)
    assert align.next_transform(current, tiny, target) is current          # scale x2: refused
    far = target + [60.0, 0.0]                                               # moved 60 of 96 px
    assert align.next_transform(current, far, target) is current
    assert align.next_transform(current, np.full_like(target, np.nan), target) is current


def test_annotated_copies_are_written_for_readable_photos_only(photos, tmp_path):
    twin = tmp_path / "other" / "head.png"          # the same name in another folder
    twin.parent.mkdir()
    twin.write_bytes(photos[0].read_bytes())
    paths = photos + [twin, photos[0]]             # a photo given twice is drawn once
    rows, _ = align.predict_photos(paths, Constant(), detector="haar", passes=1,
                                   warn=lambda message: None)
    written = write_annotated(paths, rows, tmp_path / "drawn")
    assert [p.name for p in written] == ["head.jpg", "head-2.jpg"]
    drawn = np.asarray(Image.open(written[0]).convert("RGB"), dtype=int)
    plain = np.asarray(Image.open(photos[0]).convert("RGB"), dtype=int)
    assert drawn.shape == plain.shape and np.abs(drawn - plain).max() > 100   # something drawn


class Scored:
    """A detector that finds Haar's face in the photo twice, once with each of ``scores``."""
    name = "haar"

    def __init__(self, scores):
        from kfkd_kit.photo.faces import HaarDetector
        self.haar, self.scores = HaarDetector(40), scores

    def __call__(self, photo):
        (face,) = self.haar(photo)
        return [type(face)(face.box + [i * 5.0, 0, 0, 0], score=s)
                for i, s in enumerate(self.scores)]

    def first_crop(self, face, layout):
        return self.haar.first_crop(face, layout)


def test_each_row_carries_its_detector_score_and_low_scores_are_dropped(photos):
    rows, summary = align.predict_photos(photos[:1], Constant(), detector=Scored([0.97, 0.42]),
                                         passes=1)
    assert [row["score"] for row in rows] == [0.97, 0.42] and summary.faces == 2
    assert list(align.COLUMNS[:7]) == ["image", "face", "x", "y", "w", "h", "score"]
    rows, summary = align.predict_photos(photos[:1], Constant(), detector=Scored([0.97, 0.42]),
                                         passes=1, min_score=0.9)
    assert [row["score"] for row in rows] == [0.97] and (summary.faces, summary.low_score) == (1, 1)
    assert summary.line().endswith("(1 face scored under 0.9 dropped)")
    rows, summary = align.predict_photos(photos[:1], Constant(), detector=Scored([0.5]),
                                         passes=1, min_score=0.9)
    assert rows == [] and (summary.no_face, summary.low_score) == (1, 1)
