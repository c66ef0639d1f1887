"""The data audit (data/audit.py) finds each defect planted in synthetic faces: exact and
near duplicates (training and test), swapped left/right pairs, displaced keypoints, blank
images, and an offset between two labelling groups; with >= 95% recall and >= 90%
precision per defect type. The cleaned file changes exactly what its log says."""
import numpy as np
import pandas as pd
import pytest

from kfkd_kit.data import audit as A, label_checks
from kfkd_kit.data import load_training, write_kaggle_dataset
from kfkd_kit.data.synthetic import make_faces
from kfkd_kit.keypoints import COMMON_KEYPOINTS, KEYPOINTS, columns_of

from recall import assert_found   # tests/, on sys.path


def _plant(n=400, n_test=100, seed=0, offset=None):
    X, y = make_faces(n + n_test, seed)
    y = y.astype(np.float64)
    X, Xt, y = X[:n].copy(), X[n:].copy(), y[:n].copy()
    rng = np.random.default_rng(seed + 1)
    four = rng.permutation(n)[:n // 2]
    drop = np.setdiff1d(np.arange(30), columns_of(COMMON_KEYPOINTS))
    y[np.ix_(four, drop)] = np.nan
    if offset is not None:                       # the 4-point rows labelled off by (dx, dy)
        y[four, 0::2] += offset[0]
        y[four, 1::2] += offset[1]
    rows = rng.permutation(n)
    truth = {}
    # exact duplicates: 10 in training (labels copied on half), 5 of test images
    src, dst = rows[0:10], rows[10:20]
    X[dst] = X[src]
    y[dst[:5]] = y[src[:5]]
    Xt[:5] = X[rows[90:95]]
    truth["exact"] = {(min(a, b), max(a, b)) for a, b in zip(src, dst)} | \
        {(-t - 1, int(r)) for t, r in enumerate(rows[90:95])}
    # near duplicates: re-lit, noisier, moved up to 2 px
    src, dst = rows[20:30], rows[30:40]
    img = X[src].reshape(-1, 96, 96).astype(float)
    img = img * rng.uniform(0.85, 1.15, (10, 1, 1)) + rng.uniform(-15, 15, (10, 1, 1)) + \
        rng.normal(0, 4, img.shape)
    for k in range(10):
        img[k] = np.roll(img[k], tuple(rng.integers(-2, 3, 2)), axis=(0, 1))
    X[dst] = np.clip(np.rint(img), 0, 255).reshape(10, -1).astype(np.uint8)
    truth["near"] = {(min(a, b), max(a, b)) for a, b in zip(src, dst)}
    # swapped left/right pairs, one per row
    truth["swapped"] = set()
    for r in rows[40:60]:
        pairs = [(a, b) for a, b in label_checks._PAIRS if np.isfinite(y[r, 2 * a])]
        a, b = pairs[rng.integers(len(pairs))]
        y[r, [2 * a, 2 * a + 1, 2 * b, 2 * b + 1]] = y[r, [2 * b, 2 * b + 1, 2 * a, 2 * a + 1]]
        truth["swapped"].add((int(r), KEYPOINTS[a]))
    # displaced keypoints: 8-15 px on 15-point rows, 15-25 px on 4-point rows (their
    # natural spread is wider: 3 other points place a keypoint less tightly)
    truth["outliers"] = set()
    for r in rows[60:80]:
        labelled = np.flatnonzero(np.isfinite(y[r, 0::2]))
        k = labelled[rng.integers(len(labelled))]
        angle = rng.uniform(0, 2 * np.pi)
        d = rng.uniform(8, 15) if len(labelled) > 4 else rng.uniform(15, 25)
        y[r, 2 * k] = np.clip(y[r, 2 * k] + d * np.cos(angle), 1, 95)
        y[r, 2 * k + 1] = np.clip(y[r, 2 * k + 1] + d * np.sin(angle), 1, 95)
        truth["outliers"].add((int(r), KEYPOINTS[k]))
    # blank images: near-constant, 10 in training and 3 in test
    X[rows[80:90]] = rng.integers(20, 230) + rng.integers(-3, 4, (10, X.shape[1]))
    Xt[-3:] = rng.integers(20, 230) + rng.integers(-3, 4, (3, X.shape[1]))
    truth["blank"] = {int(r) for r in rows[80:90]}
    truth["blank_test"] = {n_test - 3, n_test - 2, n_test - 1}
    return X, Xt, y, truth


def _pairs(groups):
    found = set()
    for g in groups:
        members = list(g.rows) + [-t - 1 for t in g.test]
        found |= {(min(a, b), max(a, b)) for i, a in enumerate(members) for b in members[i + 1:]}
    return found


@pytest.fixture(scope="module")
def planted():
    X, Xt, y, truth = _plant()
    return X, Xt, y, truth, A.audit(X, y, Xt)


def test_exact_duplicates_across_training_and_test(planted):
    X, Xt, y, truth, result = planted
    assert_found(_pairs(result.exact), truth["exact"], "exact duplicates")
    copied = {g.rows[0] for g in result.exact if len(g.rows) == 2 and not g.disagree}
    assert len(copied) == 5                      # the copies that kept their labels agree


def test_near_duplicates(planted):
    X, Xt, y, truth, result = planted
    assert_found(_pairs(result.near), truth["near"], "near duplicates")


def test_swapped_pairs(planted):
    X, Xt, y, truth, result = planted
    assert_found({(s["row"], s["keypoints"][0]) for s in result.swapped}, truth["swapped"],
                  "swapped pairs")


def test_displaced_keypoints(planted):
    X, Xt, y, truth, result = planted
    assert_found({(o["row"], o["keypoint"]) for o in result.outliers}, truth["outliers"],
                  "displaced keypoints")


def test_blank_images(planted):
    X, Xt, y, truth, result = planted
    assert_found({b["row"] for b in result.blank}, truth["blank"], "blank training images")
    assert_found({b["row"] for b in result.blank_test}, truth["blank_test"], "blank test images")


def test_clean_faces_raise_nothing():
    X, y = make_faces(300, 5)
    result = A.audit(X, y)
    assert not (result.exact or result.near or result.swapped or result.blank)
    assert len(result.outliers) <= 3           # natural shapes: at most 1% flagged


def test_a_planted_offset_between_labelling_groups_is_found_and_measured():
    X, Xt, y, truth = _plant(seed=3, offset=(3.0, -2.5))
    result = A.audit(X, y, Xt)
    assert [g["group"] for g in result.groups[:2]] == ["4-point", "15-point"] or \
        [g["group"] for g in result.groups[:2]] == ["15-point", "4-point"]
    four = [b for b in result.bias if b["group"] == "4-point" or b["versus"] == "4-point"]
    sign = 1 if four[0]["group"] == "4-point" else -1
    dx = np.mean([sign * b["diff_px"] for b in four if b["axis"] == "x"])
    dy = np.mean([sign * b["diff_px"] for b in four if b["axis"] == "y"])
    assert abs(dx - 3.0) < 0.6 and abs(dy + 2.5) < 0.6, (dx, dy)
    assert sum(b["differs"] for b in four) >= 6    # most of the 8 shared values stand out
    X, Xt, y, truth = _plant(seed=3)
    assert sum(b["differs"] for b in A.audit(X, y, Xt).bias) <= 1   # none planted


def test_the_same_data_gives_the_same_audit(planted):
    X, Xt, y, truth, result = planted
    again = A.audit(X, y, Xt)
    assert again.counts() == result.counts() and again.outliers == result.outliers


def test_write_clean_changes_exactly_what_its_log_says(tmp_path):
    write_kaggle_dataset(tmp_path / "d", n_train=120, n_test=5, seed=4)
    before = load_training(tmp_path / "d")
    X, y = before.X.copy(), before.y.astype(np.float64)
    # plant on the file's own rows: a swap on a complete row, a blank image, a copy
    result = A.audit(X, y)
    complete = np.flatnonzero(np.isfinite(y).all(axis=1))
    r = int(complete[0])
    result.swapped = [{"row": r, "keypoints": ["left_eye_center", "right_eye_center"],
                       "sse": 1.0, "sse_swapped": 0.0}]
    result.blank = [{"row": 3, "std": 0.0, "spread": 0.0}]
    result.outliers = [{"row": int(complete[1]), "keypoint": "nose_tip", "z": 9.0, "distance": 9.0}]
    changes = A.clean_changes(result, y)
    done = A.write_clean(before.source, tmp_path / "clean.csv", changes)
    after = load_training(tmp_path / "clean.csv")
    assert len(after.X) == len(X) - 1
    keep = np.setdiff1d(np.arange(len(X)), [3])
    assert (after.X == X[keep]).all()
    expected = y[keep].copy()
    at = int(np.flatnonzero(keep == r)[0])
    expected[at, [0, 1, 2, 3]] = y[r, [2, 3, 0, 1]]
    at = int(np.flatnonzero(keep == complete[1])[0])
    expected[at, 20:22] = np.nan
    np.testing.assert_array_equal(np.isnan(after.y), np.isnan(expected))
    np.testing.assert_allclose(after.y[~np.isnan(expected)], expected[~np.isnan(expected)], atol=1e-6)
    log = pd.DataFrame([vars(c) for c in done])
    assert set(log["reason"].str.split(":").str[0]) == {"no face", "left/right swapped", "outlier"}
    assert len(log) == 1 + 4 + 2
