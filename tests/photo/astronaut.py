"""NASA's astronaut portrait (public domain, tests/fixtures/README.md) for the photo tests:
the hand-placed keypoints of its face, Kaggle-like crops of that face, and a ridge regression
from pixels to keypoints fitted on them in seconds. The synthetic faces would not fool a
detector trained on photos, and no net that predicts real faces well can be trained in a test;
this model finds this one face's points within a fraction of a pixel.

Not a test module: the photo tests import it (tests/photo is on sys.path under pytest).
"""
from pathlib import Path

import numpy as np
from PIL import Image

from kfkd_kit.photo import framing

ROOT = Path(__file__).resolve().parents[2]
ASTRONAUT = ROOT / "tests" / "fixtures" / "astronaut.jpg"
# Placed by hand on the 512x512 photo (Kaggle's coordinates, Kaggle's order).
ASTRONAUT_KEYPOINTS = np.array([
    246.0, 104.0, 204.8, 102.3, 237.3, 104.0, 254.8, 104.0, 213.5, 103.0, 194.8, 102.3,
    234.8, 93.0, 259.8, 94.8, 212.3, 93.0, 189.8, 93.5, 224.8, 126.0, 246.0, 143.5,
    204.8, 142.3, 224.8, 141.5, 224.8, 155.5])
HEAD = (100, 0, 356, 256)      # the 256x256 part of the photo around the head
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def head():
    """(RGB uint8 256x256, keypoints in it)."""
    image = np.asarray(Image.open(ASTRONAUT).convert("RGB").crop(HEAD))
    return image, ASTRONAUT_KEYPOINTS - np.tile([HEAD[0], HEAD[1]], 15)


def similarity(scale=1.0, degrees=0.0, shift=(0.0, 0.0), about=(0.0, 0.0)):
    angle = np.deg2rad(degrees)
    A = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    about = np.asarray(about, dtype=float)
    return np.concatenate([A, (about - A @ about + np.asarray(shift))[:, None]], axis=1)


def face_crops(n, seed=0, scale=0.12, degrees=12.0, shift=5.0):
    """``n`` Kaggle-like 96x96 grey crops of the face (float, flat) and their keypoints: the
    eyes near (66, 37.5) and (30, 37.5), the bottom lip near (48.5, 80), each crop scaled by
    up to ``scale``, turned by up to ``degrees`` and moved by up to ``shift`` px."""
    image, keypoints = head()
    grey = image.astype(np.float32) @ LUMA
    points = framing.points(keypoints)
    align = framing.fit_similarity(points[[0, 1, 14]], [[66, 37.5], [30, 37.5], [48.5, 80]])
    rng = np.random.default_rng(seed)
    X, y = [], []
    for _ in range(n):
        T = framing.compose(similarity(rng.uniform(1 - scale, 1 + scale),
                                       rng.uniform(-degrees, degrees),
                                       rng.uniform(-shift, shift, 2), about=(48.5, 48.5)), align)
        X.append(framing.warp_to_crop(grey, T).reshape(-1))
        y.append(framing.apply(T, points).reshape(-1))
    return np.array(X), np.array(y)


def save_ridge_model(path, n=500):
    """A ridge regression on ``n`` crops of the face: pixels -> 30 keypoints, saved at
    ``path`` with its JSON (sha256) and its mean layout, like a trained model."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline

    from kfkd_kit.net.pipeline import PixelScaler
    from kfkd_kit.utils.modelfile import save_model
    X, y = face_crops(n)
    model = Pipeline([("pixels", PixelScaler()), ("net", Ridge(alpha=3.0))]).fit(X, y)
    framing.attach_layout(model, y)
    save_model(model, path, {"net": "ridge on the astronaut"})
    return path
