"""The audit's checks against out-of-fold predictions (data/residual_checks.py): label errors
planted into synthetic labels (displaced keypoints, swapped left/right pairs) are found with
>= 95% recall and >= 90% precision when the "out-of-fold predictions" are the true keypoints
plus small noise; clean labels raise next to nothing; predictions that do not fit the labels
are refused in one line; the cleaning policy empties and swaps only what it says."""
import numpy as np
import pytest

from kfkd_kit.data import audit as A, residual_checks as R
from kfkd_kit.data.synthetic import make_faces
from kfkd_kit.keypoints import COMMON_KEYPOINTS, KEYPOINTS, columns_of

from recall import assert_found   # tests/, on sys.path

PAIRS = R._PAIRS


def _plant(n=600, seed=0, noise=1.0):
    """(images, labels with errors planted, predictions, truth): half the rows label only
    the 4 common keypoints; labels carry 0.5 px of noise, predictions ``noise`` px."""
    X, true = make_faces(n, seed)
    true = true.astype(np.float64)
    rng = np.random.default_rng(seed + 1)
    four = rng.permutation(n)[:n // 2]
    true[np.ix_(four, np.setdiff1d(np.arange(30), columns_of(COMMON_KEYPOINTS)))] = np.nan
    y = true + rng.normal(0, 0.5, true.shape)
    predictions = np.nan_to_num(true, nan=48.0) + rng.normal(0, noise, true.shape)
    rows = rng.permutation(n)
    truth = {"swapped": set(), "outliers": set()}
    for r in rows[:30]:                          # one pair swapped a row
        pairs = [(a, b) for a, b in PAIRS if np.isfinite(y[r, 2 * a]) and np.isfinite(y[r, 2 * b])]
        a, b = pairs[rng.integers(len(pairs))]
        y[r, [2 * a, 2 * a + 1, 2 * b, 2 * b + 1]] = y[r, [2 * b, 2 * b + 1, 2 * a, 2 * a + 1]]
        truth["swapped"].add((int(r), KEYPOINTS[a]))
    for r in rows[30:70]:                        # one keypoint displaced 7-15 px a row
        labelled = np.flatnonzero(np.isfinite(y[r, 0::2]))
        k = labelled[rng.integers(len(labelled))]
        angle, d = rng.uniform(0, 2 * np.pi), rng.uniform(7, 15)
        y[r, 2 * k] += d * np.cos(angle)
        y[r, 2 * k + 1] += d * np.sin(angle)
        truth["outliers"].add((int(r), KEYPOINTS[k]))
    return X, y, predictions, truth


@pytest.fixture(scope="module")
def planted():
    X, y, predictions, truth = _plant()
    return X, y, predictions, truth, R.oof_checks(y, predictions, run="synthetic")


def test_swapped_pairs_are_found(planted):
    X, y, predictions, truth, found = planted
    assert_found({(s["row"], s["keypoints"][0]) for s in found.swapped}, truth["swapped"],
                  "swapped pairs")


def test_displaced_keypoints_are_found(planted):
    X, y, predictions, truth, found = planted
    assert_found({(o["row"], o["keypoint"]) for o in found.outliers}, truth["outliers"],
                  "displaced keypoints")
    # worst first, and each keypoint's spread is the prediction's noise, not the errors'
    z = [o["z"] for o in found.outliers]
    assert z == sorted(z, reverse=True)
    spread = [k["spread_px"] for k in found.keypoints]
    assert all(0.8 < s < 1.6 for s in spread), spread     # sqrt(1 + 0.25) ~ 1.12


def test_a_biased_net_does_not_flag_every_row():
    """A net off by 3 px on one keypoint everywhere: the median residual is removed."""
    X, y, predictions, truth = _plant(seed=2)
    predictions[:, 20] += 3.0
    found = R.oof_checks(y, predictions)
    assert_found({(o["row"], o["keypoint"]) for o in found.outliers}, truth["outliers"],
                  "displaced keypoints under a biased net")


def test_clean_labels_raise_next_to_nothing():
    X, true = make_faces(400, 7)
    rng = np.random.default_rng(0)
    found = R.oof_checks(true + rng.normal(0, 0.5, true.shape),
                         true + rng.normal(0, 1.0, true.shape))
    assert not found.swapped and len(found.outliers) <= 2        # of 6000 labelled points


def test_the_same_input_gives_the_same_checks(planted):
    X, y, predictions, truth, found = planted
    again = R.oof_checks(y, predictions, run="synthetic")
    assert again.outliers == found.outliers and again.swapped == found.swapped


def test_predictions_that_do_not_fit_the_labels_are_refused():
    y = np.zeros((5, 30))
    with pytest.raises(ValueError, match=r"shape \(4, 30\) for labels of shape \(5, 30\)"):
        R.oof_checks(y, np.zeros((4, 30)))
    bad = np.zeros((5, 30))
    bad[2, 7] = np.nan
    with pytest.raises(ValueError, match="row 2, column 7: not a number"):
        R.oof_checks(y, bad)


def test_the_audit_carries_them_and_cleans_by_its_policy(planted):
    X, y, predictions, truth, found = planted
    result = A.audit(X, y, oof=predictions, oof_run="synthetic")
    counts = result.counts()
    assert counts["keypoints far from their out-of-fold prediction"] == len(found.outliers)
    assert counts["pairs that fit the out-of-fold prediction better swapped"] == len(found.swapped)
    tables = result.tables()
    rows, columns = tables["oof-labels"]
    assert len(rows) == len(found.outliers) + len(found.swapped) and "z" in columns
    assert len(tables["oof-keypoints"][0]) == 15
    assert "oof-labels" not in A.audit(X, y).tables()     # without OOF= nothing changes
    changes = A.clean_changes(result, y)
    emptied = {(c.row, c.column.rsplit("_", 1)[0]) for c in changes
               if c.column and c.new == "" and "out-of-fold" in c.reason}
    geometry = {(o["row"], o["keypoint"]) for o in result.outliers}
    for o in found.outliers:
        key = (o["row"], o["keypoint"])
        expected = key in geometry or (o["z"] > R.CLEAN_Z and o["distance_px"] > R.CLEAN_MIN_PX)
        assert (key in emptied) == expected, o
    # every planted displacement is emptied in the cleaned file, by one rule or both
    assert len(emptied & truth["outliers"]) >= 0.9 * len(truth["outliers"])
    # no column changed twice
    columns = [(c.row, c.column) for c in changes if c.column]
    geometry_swapped = {(s["row"], k) for s in result.swapped for k in s["keypoints"]}
    twice = {c for c in columns if columns.count(c) > 1}
    assert all((r, col.rsplit("_", 1)[0]) in geometry_swapped for r, col in twice)
    swapped = {(c.row, c.column.rsplit("_", 1)[0]) for c in changes if "out-of-fold" in c.reason
               and c.new.startswith("@")}
    assert {(r, k) for r, k in truth["swapped"]} <= swapped | geometry_swapped
