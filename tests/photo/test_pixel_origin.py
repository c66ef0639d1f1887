"""The labels' pixel origin across scales: predict maps a crop's keypoints back to a photo in
the model's declared convention, and the setting travels with the model (joblib, skops, the
JSON, the ONNX file).

The photos are built here from pixel indices alone (cv2.warpAffine of a synthetic face into a
bigger canvas at scale s, tilted), so their truth does not lean on framing.py: a keypoint at
label K in convention o sits on the face's pixel index K - o, which the paste moves to canvas
index A (K - o) + m, label A (K - o) + m + o. The stand-in detector frames exactly the pasted
face and the stand-in net answers the face's true keypoints, so what is measured is the
crop -> photo mapping alone.
"""
import numpy as np
import pytest
from PIL import Image

from kfkd_kit.data.synthetic import make_faces
from kfkd_kit.keypoints import FEATURE_NAMES, IMAGE_SIDE
from kfkd_kit.photo import align, faces, framing

TILT = 12.0          # degrees


class Pasted:
    """A stand-in detector for one photo: one face, framed by the inverse of the paste."""

    def __init__(self, box, photo_to_crop):
        self.box, self.photo_to_crop = box, photo_to_crop

    def __call__(self, photo):
        return [faces.Face(np.asarray(self.box, dtype=float))]

    def first_crop(self, face, layout):
        return self.photo_to_crop


class TrueKeypoints:
    """A stand-in net that answers the face's true keypoints in convention ``pixel_origin``,
    and keeps the crops it is shown."""

    def __init__(self, keypoints, pixel_origin):
        self.keypoints, self.layout, self.pixel_origin = keypoints, keypoints, pixel_origin
        self.crops = []

    def __call__(self, crops):
        self.crops.append(np.asarray(crops))
        return np.tile(self.keypoints, (len(crops), 1))


def pasted_photo(folder, scale, origin, tilt=TILT, seed=0):
    """A face pasted at ``scale`` (photo pixels per face pixel), tilted by ``tilt`` degrees,
    into a canvas: (path, face image, its keypoints, their truth in the photo, the detector)
    in convention ``origin``."""
    import cv2
    images, points = make_faces(1, seed=seed, pixel_origin=origin)
    face, keypoints = images[0].reshape(IMAGE_SIDE, IMAGE_SIDE), points[0].astype(np.float64)
    angle = np.deg2rad(tilt)
    A = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    side = int(np.ceil(IMAGE_SIDE * scale * 2.2))
    m = np.array([side / 2, side / 2]) - A @ [47.5, 47.5] + [3.3, -2.1]   # index -> index
    canvas = cv2.warpAffine(face.astype(np.float32), np.concatenate([A, m[:, None]], 1),
                            (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=120.0)
    path = folder / f"pasted-{scale:g}-{origin:g}-{tilt:g}.png"
    Image.fromarray(np.clip(np.round(canvas), 0, 255).astype(np.uint8)).save(path)
    index = keypoints.reshape(15, 2) - origin
    truth = (index @ A.T + m + origin).reshape(-1)
    # the detector's frame in framing's working coordinates (pixel centres at index + w)
    w = framing.WORK_ORIGIN
    to_photo = np.concatenate([A, (m + w - A @ [w, w])[:, None]], 1)
    inverse = np.linalg.inv(to_photo[:, :2])
    photo_to_crop = np.concatenate([inverse, (-inverse @ to_photo[:, 2])[:, None]], 1)
    box = [side / 2 - 40 * scale, side / 2 - 40 * scale, 80 * scale, 80 * scale]
    return path, face, keypoints, truth, Pasted(box, photo_to_crop)


def offset96(folder, monkeypatch, scale, true_origin, declared_origin, tilt=TILT):
    """Mean distance (px at the 96-px face scale) between predict's keypoints and the truth,
    for labels made in ``true_origin`` and a model that declares ``declared_origin``; and the
    truth minus the keypoints, per keypoint (15, 2)."""
    path, face, keypoints, truth, detector = pasted_photo(folder, scale, true_origin, tilt)
    monkeypatch.setattr(faces, "make_detector", lambda name, min_size: detector)
    backend = TrueKeypoints(keypoints, declared_origin)
    rows, summary = align.predict_photos([path], backend, detector="pasted", passes=1)
    assert summary.faces == 1 and len(backend.crops) == 1
    # the crop it was shown is the pasted face again (the stand-ins frame what they claim)
    import cv2
    crop = backend.crops[0][0]
    blur = lambda image: cv2.GaussianBlur(np.float32(image), (0, 0), 2.0)[8:-8, 8:-8]  # noqa: E731
    assert np.corrcoef(blur(crop).ravel(), blur(face).ravel())[0, 1] > 0.95
    found = np.array([rows[0][name] for name in FEATURE_NAMES], dtype=float)
    error = (found - truth).reshape(15, 2) / scale
    return float(np.linalg.norm(error, axis=1).mean()), error


@pytest.mark.parametrize("scale", [2.5, 0.8])
@pytest.mark.parametrize("origin", [0.5, 1.0])
def test_keypoints_land_on_the_truth_in_the_declared_convention(tmp_path, monkeypatch, scale,
                                                                origin):
    offset, _ = offset96(tmp_path, monkeypatch, scale, origin, origin)
    assert offset <= 0.05


@pytest.mark.parametrize("scale", [2.5, 0.8])
@pytest.mark.parametrize("true_origin, declared", [(0.5, 1.0), (1.0, 0.5)])
@pytest.mark.parametrize("tilt", [0.0, TILT])
def test_the_wrong_convention_misses_by_half_a_pixel_times_one_less_one_over_s(
        tmp_path, monkeypatch, scale, true_origin, declared, tilt):
    offset, error = offset96(tmp_path, monkeypatch, scale, true_origin, declared, tilt)
    # a crop-to-photo map B = s R turns a convention difference d (per coordinate) into
    # (B - I) d (1, 1) in the photo, (R - I/s) d (1, 1) at the face's scale: upright,
    # d (1 - 1/s) per coordinate, +-0.3 px at s = 2.5 and -+0.125 px at s = 0.8
    d = true_origin - declared
    angle = np.deg2rad(tilt)
    R = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    expected = (R - np.eye(2) / scale) @ [d, d]
    if tilt == 0:
        np.testing.assert_allclose(expected, [d * (1 - 1 / scale)] * 2)
    np.testing.assert_allclose(error, np.tile(expected, (15, 1)), atol=0.01)
    assert offset > 0.05 and offset == pytest.approx(np.linalg.norm(expected), abs=0.01)


def test_the_origin_travels_with_joblib_skops_json_and_onnx(tmp_path):
    import json

    from kfkd_kit import configs
    from kfkd_kit.commands.predict import load_keypoints
    from kfkd_kit.meta.onnxexport import export_onnx
    from kfkd_kit.net.estimator import pixel_origin_of
    from kfkd_kit.photo.onnxmodel import OnnxKeypoints
    from kfkd_kit.training import fit_and_save
    from kfkd_kit.data import TrainingData
    from kfkd_kit.utils.modelfile import load_model, save_model
    X, y = make_faces(48, seed=2, pixel_origin=0.0)
    model = configs.build("net1", epochs=1, device="cpu", precision="fp32", verbose=0,
                          pixel_origin=0.0)
    training = TrainingData(X=X, y=y, source="synthetic", fingerprint="0" * 16)
    path = tmp_path / "zero.joblib"
    record, _ = fit_and_save(model, training, path, name="net1", say=lambda *a: None)
    assert record["params"]["pixel_origin"] == 0.0
    assert json.loads(path.with_suffix(".json").read_text())["params"]["pixel_origin"] == 0.0
    loaded = load_model(path)
    assert pixel_origin_of(loaded) == framing.origin_of(loaded) == 0.0
    assert load_keypoints(path).pixel_origin == 0.0
    save_model(loaded, tmp_path / "pickle-free.skops", {})
    assert pixel_origin_of(load_model(tmp_path / "pickle-free.skops")) == 0.0
    assert export_onnx(path, say=lambda *a: None) == path.with_suffix(".onnx")
    assert OnnxKeypoints(path.with_suffix(".onnx")).pixel_origin == 0.0
    assert load_keypoints(path.with_suffix(".onnx")).pixel_origin == 0.0
