"""The synthetic faces: drawing agrees with the keypoints (and their mirror), the files
follow Kaggle's layout exactly, and everything is deterministic."""
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kfkd_kit import keypoints as K
from kfkd_kit.data import make_faces, write_kaggle_dataset

N_TRAIN, N_TEST, SEED, MISSING = 300, 90, 3, 0.7
FILES = ("training", "test", "lookup", "sample_submission", "test_keypoints")
COMMON_COLUMNS = K.columns_of(K.COMMON_KEYPOINTS)


@pytest.fixture(scope="module")
def faces():
    return make_faces(400, seed=1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic") / "data"      # not there yet: created
    paths = write_kaggle_dataset(folder, n_train=N_TRAIN, n_test=N_TEST, seed=SEED,
                                 missing_fraction=MISSING)
    return folder, paths


# ----------------------------------------------------------------------- helpers

def _point(y, name):
    i = K.FEATURE_INDEX[f"{name}_x"]
    return y[:, i], y[:, i + 1]


def _index(v):
    """A label (the default pixel origin) -> 0-based pixel index (fractional)."""
    return v - K.DEFAULT_PIXEL_ORIGIN


def _pixel(X, x, y):
    """Grey level of the pixel whose centre is nearest to (x, y) (Kaggle's coordinates)."""
    col = np.clip(np.rint(_index(x)).astype(int), 0, 95)
    row = np.clip(np.rint(_index(y)).astype(int), 0, 95)
    return X.reshape(-1, 96, 96)[np.arange(len(X)), row, col].astype(float)


def _cheek(X, y, side):
    """Skin: halfway between an eye centre and the mouth corner on the same side."""
    ex, ey = _point(y, f"{side}_eye_center")
    mx, my = _point(y, f"mouth_{side}_corner")
    return _pixel(X, (ex + mx) / 2, (ey + my) / 2)


def _darkness(X, y):
    """Per feature, per face: cheek grey level minus the grey level at the feature."""
    out = {}
    for side in ("left", "right"):
        skin = _cheek(X, y, side)
        out[f"{side} pupil"] = skin - _pixel(X, *_point(y, f"{side}_eye_center"))
        (ix, iy), (ox, oy) = (_point(y, f"{side}_eyebrow_{end}_end") for end in ("inner", "outer"))
        out[f"{side} brow"] = skin - _pixel(X, (ix + ox) / 2, (iy + oy) / 2)
    skin = (_cheek(X, y, "left") + _cheek(X, y, "right")) / 2
    out["nose tip"] = skin - _pixel(X, *_point(y, "nose_tip"))
    (tx, ty), (bx, by) = _point(y, "mouth_center_top_lip"), _point(y, "mouth_center_bottom_lip")
    out["mouth"] = skin - _pixel(X, (tx + bx) / 2, (ty + by) / 2)
    return out


def _dark_rate(X, y):
    """Fraction of faces where each feature is at least 10 grey levels darker than skin."""
    return {name: float((d > 10).mean()) for name, d in _darkness(X, y).items()}


def _pupil_centroid_offset(X, y, side):
    """Mean (dx, dy) from the keypoint to the centroid of darkness in the 5x5 pixels around it."""
    x0, y0 = (_index(v) for v in _point(y, f"{side}_eye_center"))
    n = len(X)
    d = np.arange(-2, 3)
    rows = np.clip(np.rint(y0).astype(int)[:, None, None] + d[None, :, None], 0, 95)
    cols = np.clip(np.rint(x0).astype(int)[:, None, None] + d[None, None, :], 0, 95)
    patch = X.reshape(-1, 96, 96)[np.arange(n)[:, None, None], rows, cols].astype(float)
    weight = np.clip(_cheek(X, y, side)[:, None, None] - patch, 0, None)
    total = weight.sum(axis=(1, 2))
    dx = (weight * (cols - x0[:, None, None])).sum(axis=(1, 2)) / total
    dy = (weight * (rows - y0[:, None, None])).sum(axis=(1, 2)) / total
    return dx.mean(), dy.mean()


# ----------------------------------------------------------------------- make_faces

def test_make_faces_shapes_types_and_range(faces):
    X, y = faces
    assert X.shape == (400, K.N_PIXELS) and X.dtype == np.uint8
    assert y.shape == (400, K.N_TARGETS) and y.dtype == np.float32
    assert np.isfinite(y).all()
    assert y.min() >= 0.0 + K.DEFAULT_PIXEL_ORIGIN and y.max() <= 95.0 + K.DEFAULT_PIXEL_ORIGIN
    assert X.min() < 30 and X.max() > 225          # uses the grey range
    assert len({X[i].tobytes() for i in range(len(X))}) == len(X)
    X0, y0 = make_faces(0)
    assert X0.shape == (0, K.N_PIXELS) and y0.shape == (0, K.N_TARGETS)


def test_keypoints_follow_the_subjects_left_and_face_layout(faces):
    _, y = faces
    for left, right in K.KEYPOINT_FLIP_PAIRS:
        assert (_point(y, left)[0] > _point(y, right)[0]).all(), left
    assert 60 < _point(y, "left_eye_center")[0].mean() < 72
    assert 24 < _point(y, "right_eye_center")[0].mean() < 36
    eye_y = (_point(y, "left_eye_center")[1] + _point(y, "right_eye_center")[1]) / 2
    brow_y = (_point(y, "left_eyebrow_inner_end")[1] + _point(y, "right_eyebrow_inner_end")[1]) / 2
    nose_y = _point(y, "nose_tip")[1]
    assert (brow_y < eye_y).all() and (eye_y < nose_y).all()
    assert (nose_y < _point(y, "mouth_center_top_lip")[1]).all()
    assert (_point(y, "mouth_center_top_lip")[1] < _point(y, "mouth_center_bottom_lip")[1]).all()


def test_faces_vary_in_pose_and_shape(faces):
    _, y = faces
    eye_l, eye_r = np.stack(_point(y, "left_eye_center")), np.stack(_point(y, "right_eye_center"))
    spacing = np.linalg.norm(eye_l - eye_r, axis=0)
    tilt = np.degrees(np.arctan2(eye_l[1] - eye_r[1], eye_l[0] - eye_r[0]))
    assert spacing.std() > 2.5 and 25 < spacing.mean() < 45
    assert tilt.min() < -10 and tilt.max() > 10 and np.abs(tilt).max() <= 15.01
    centre_x = y[:, K.X_COLUMNS].mean(axis=1)
    assert centre_x.std() > 3


def test_make_faces_is_deterministic_and_prefix_stable(faces):
    X, y = faces
    X2, y2 = make_faces(400, seed=1)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)
    X3, y3 = make_faces(21, seed=1)
    assert np.array_equal(X[:21], X3) and np.array_equal(y[:21], y3)
    X4, y4 = make_faces(21, seed=2)
    assert not np.array_equal(X3, X4) and not np.allclose(y3, y4)


def test_features_are_drawn_at_their_keypoints(faces):
    X, y = faces
    rates = _dark_rate(X, y)
    assert min(rates.values()) > 0.95, rates
    # The check can fail: keypoints of other faces, or shifted by 4 px, do not pass it.
    assert max(_dark_rate(X, np.roll(y, 1, axis=0)).values()) < 0.6
    assert max(_dark_rate(X, y + 4).values()) < 0.6


def test_eye_centres_match_the_pixel_index_convention(faces):
    """The dark pupil+iris is centred on the keypoint to well under half a pixel; a
    half-pixel convention error (centre of column i at i + 0.5) would show as ~0.4 px."""
    X, y = faces
    for side in ("left", "right"):
        dx, dy = _pupil_centroid_offset(X, y, side)
        assert abs(dx) < 0.1 and abs(dy) < 0.1, (side, dx, dy)
    shifted = y.copy()
    shifted[:, K.X_COLUMNS] += 0.5
    assert _pupil_centroid_offset(X, shifted, "left")[0] < -0.25


def test_mirrored_faces_agree_with_mirrored_keypoints(faces):
    X, y = faces
    Xm, ym = K.mirror_images(X), K.mirror_targets(y)
    rates = _dark_rate(Xm, ym)
    assert min(rates.values()) > 0.95, rates
    for side in ("left", "right"):
        dx, dy = _pupil_centroid_offset(Xm, ym, side)
        assert abs(dx) < 0.1 and abs(dy) < 0.1, (side, dx, dy)
    # The mirrored face still has its left eye on the image's right ...
    for left, right in K.KEYPOINT_FLIP_PAIRS:
        assert (_point(ym, left)[0] > _point(ym, right)[0]).all(), left
    # ... and the unmirrored keypoints do not fit the mirrored image.
    wrong = _dark_rate(Xm, y)
    assert wrong["left pupil"] < 0.6 and wrong["right pupil"] < 0.6, wrong


@pytest.mark.slow
def test_a_linear_model_learns_the_keypoints():
    from sklearn.linear_model import Ridge

    X, y = make_faces(700, seed=5)
    X = X / 255.0
    model = Ridge(alpha=30.0).fit(X[:500], y[:500])
    rmse = np.sqrt(((model.predict(X[500:]) - y[500:]) ** 2).mean())
    baseline = np.sqrt(((y[500:] - y[:500].mean(axis=0)) ** 2).mean())
    assert rmse < 0.7 * baseline, (rmse, baseline)


# ----------------------------------------------------------------------- files

def test_dataset_files_and_return_value(dataset):
    folder, paths = dataset
    assert set(paths) == set(FILES)
    names = {"training.csv", "test.csv", "IdLookupTable.csv", "SampleSubmission.csv",
             "test_keypoints.csv"}
    assert {p.name for p in paths.values()} == names
    assert all(p.parent == folder for p in paths.values())
    assert {p.name for p in folder.iterdir()} == names        # no temporary files left


def test_training_csv_layout(dataset):
    _, paths = dataset
    raw = paths["training"].read_bytes()
    assert b"\r" not in raw
    lines = raw.decode().split("\n")
    assert lines[-1] == "" and len(lines) == N_TRAIN + 2
    assert lines[0] == ",".join(K.FEATURE_NAMES) + ",Image"
    number = re.compile(r"^\d+\.\d{6}$")
    images, targets = [], []
    for line in lines[1:-1]:
        fields = line.split(",")
        assert len(fields) == 31
        assert all(f == "" or number.match(f) for f in fields[:30])
        tokens = fields[30].split(" ")                    # single spaces, no padding
        assert len(tokens) == K.N_PIXELS and all(t.isdigit() for t in tokens)
        images.append(np.array(tokens, dtype=int))
        targets.append([float(f) if f else np.nan for f in fields[:30]])
    images, targets = np.array(images), np.array(targets)
    assert images.min() >= 0 and images.max() <= 255

    X, y = make_faces(N_TRAIN + N_TEST, seed=SEED)
    assert np.array_equal(images, X[:N_TRAIN])
    present = ~np.isnan(targets)
    assert np.allclose(targets[present], y[:N_TRAIN][present], atol=1e-5)

    complete = present.all(axis=1)
    incomplete = ~complete
    assert abs(incomplete.mean() - MISSING) < 0.02
    expected_mask = np.zeros(30, dtype=bool)
    expected_mask[COMMON_COLUMNS] = True
    assert (present[incomplete] == expected_mask).all()
    # pandas reads it as Kaggle's file
    table = pd.read_csv(paths["training"])
    assert list(table.columns) == list(K.FEATURE_NAMES) + ["Image"]
    assert table[list(K.FEATURE_NAMES)].notna().all(axis=1).sum() == complete.sum()


def test_test_csv_and_hidden_labels(dataset):
    _, paths = dataset
    raw = paths["test"].read_bytes()
    assert b"\r" not in raw and raw.startswith(b"ImageId,Image\n")
    table = pd.read_csv(paths["test"])
    assert list(table.columns) == ["ImageId", "Image"]
    assert table["ImageId"].tolist() == list(range(1, N_TEST + 1))
    images = np.array([np.array(s.split(" "), dtype=int) for s in table["Image"]])
    X, y = make_faces(N_TRAIN + N_TEST, seed=SEED)
    assert np.array_equal(images, X[N_TRAIN:])

    truth = pd.read_csv(paths["test_keypoints"])
    assert list(truth.columns) == ["ImageId"] + list(K.FEATURE_NAMES)
    assert truth["ImageId"].tolist() == list(range(1, N_TEST + 1))
    assert np.allclose(truth[list(K.FEATURE_NAMES)].to_numpy(), y[N_TRAIN:], atol=1e-5)


def test_lookup_table_layout(dataset):
    _, paths = dataset
    raw = paths["lookup"].read_bytes()
    assert raw.startswith(b"RowId,ImageId,FeatureName,Location\r\n")
    assert raw.endswith(b",\r\n")
    assert raw.count(b"\n") == raw.count(b"\r\n") and raw.count(b"\r") == raw.count(b"\r\n")
    table = pd.read_csv(paths["lookup"])
    assert list(table.columns) == ["RowId", "ImageId", "FeatureName", "Location"]
    assert raw.count(b"\r\n") == len(table) + 1
    assert table["RowId"].tolist() == list(range(1, len(table) + 1))
    assert table["Location"].isna().all()
    assert table["ImageId"].is_monotonic_increasing
    assert sorted(table["ImageId"].unique()) == list(range(1, N_TEST + 1))
    common_names = [K.FEATURE_NAMES[i] for i in COMMON_COLUMNS]
    sizes = []
    for _, group in table.groupby("ImageId"):
        wanted = group["FeatureName"].tolist()
        assert wanted in (common_names, list(K.FEATURE_NAMES))
        sizes.append(len(wanted))
    full_fraction = np.mean(np.array(sizes) == 30)
    assert abs(full_fraction - 1 / 3) < 0.05


def test_sample_submission_layout(dataset):
    _, paths = dataset
    raw = paths["sample_submission"].read_bytes()
    assert b"\r" not in raw and raw.startswith(b"RowId,Location\n1,0\n")
    table = pd.read_csv(paths["sample_submission"])
    lookup = pd.read_csv(paths["lookup"])
    assert list(table.columns) == ["RowId", "Location"]
    assert table["RowId"].tolist() == lookup["RowId"].tolist()
    assert (table["Location"] == 0).all()


def test_dataset_is_deterministic_in_the_seed(dataset, tmp_path):
    _, paths = dataset
    again = write_kaggle_dataset(tmp_path / "again", n_train=N_TRAIN, n_test=N_TEST,
                                 seed=SEED, missing_fraction=MISSING)
    for key in FILES:
        assert again[key].read_bytes() == paths[key].read_bytes(), key
    other = write_kaggle_dataset(tmp_path / "other", n_train=N_TRAIN, n_test=N_TEST,
                                 seed=SEED + 1, missing_fraction=MISSING)
    for key in ("training", "test", "test_keypoints"):
        assert other[key].read_bytes() != paths[key].read_bytes(), key


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_missing_fraction_extremes(tmp_path, fraction):
    paths = write_kaggle_dataset(tmp_path, n_train=20, n_test=6, seed=0,
                                 missing_fraction=fraction)
    table = pd.read_csv(paths["training"])
    present = table[list(K.FEATURE_NAMES)].notna().to_numpy()
    assert present[:, COMMON_COLUMNS].all()
    assert present.all(axis=1).mean() == 1.0 - fraction


def test_rewriting_replaces_every_file_by_os_replace(tmp_path, monkeypatch):
    """Each file arrives whole by os.replace (tests/utils/test_atomic.py: a failed rewrite leaves
    the old files as they were)."""
    first = write_kaggle_dataset(tmp_path, n_train=10, n_test=3, seed=0)
    before = first["training"].read_bytes()
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (replaced.append(Path(dst)),
                                                         real_replace(src, dst)))
    second = write_kaggle_dataset(tmp_path, n_train=12, n_test=3, seed=0)
    assert sorted(replaced) == sorted(second.values())
    assert second["training"].read_bytes() != before
    assert len(pd.read_csv(second["training"])) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in second.values())


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError):
        make_faces(-1)
    with pytest.raises(ValueError):
        write_kaggle_dataset(tmp_path, n_train=5, n_test=2, missing_fraction=1.5)
