"""The audit's face check: real face crops are found, planted non-faces are not."""
import importlib.util

import numpy as np
import pytest

from astronaut import face_crops   # tests/photo, on sys.path
from recall import assert_found     # tests/, on sys.path

pytestmark = pytest.mark.skipif(importlib.util.find_spec("facenet_pytorch") is None,
                                reason="facenet-pytorch (MTCNN) is not installed")


def astronaut_crops(n, seed=0):
    """Kaggle-like 96x96 grey crops of the astronaut's face, each moved a little and re-lit."""
    crops, _ = face_crops(n, seed, scale=0.1, degrees=10.0, shift=4.0)
    rng = np.random.default_rng(seed)
    crops = crops * rng.uniform(0.8, 1.15, (n, 1)) + rng.uniform(-15, 15, (n, 1))
    return np.clip(crops, 0, 255).astype(np.uint8)


def non_faces(seed=0):
    """Pictures with no face: noise, smooth gradients, stripes, a checkerboard, blobs."""
    import cv2
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:96, 0:96]
    out = [rng.integers(0, 256, (96, 96)),
           cv2.GaussianBlur(rng.integers(0, 256, (96, 96)).astype(np.uint8), (0, 0), 4) * 3.0,
           xx * 2.5, (xx + yy) * 1.3, 128 + 100 * np.sin(xx / 3.0), 128 + 100 * np.sin((xx + 2 * yy) / 5.0),
           ((xx // 12 + yy // 12) % 2) * 200 + 20, 128 + 60 * np.cos(np.hypot(xx - 48, yy - 48) / 4.0)]
    return np.array([np.clip(o, 0, 255).astype(np.uint8).reshape(-1) for o in out])


def test_planted_non_faces_are_found_and_real_faces_are_not():
    from kfkd_kit.photo.face_check import faceless
    faces, others = astronaut_crops(12), non_faces()
    X = np.concatenate([faces, others])
    flagged = {f["row"] for f in faceless(X)}
    assert_found(flagged, set(range(len(faces), len(X))), "images with no face")


def test_rows_already_reported_are_skipped():
    from kfkd_kit.photo.face_check import faceless
    others = non_faces()[:3]
    assert [f["row"] for f in faceless(others, skip=[1])] == [0, 2]
