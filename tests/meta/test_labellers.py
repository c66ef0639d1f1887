"""LabellerBias: each labelling group's offset measured and added back, on planted data."""
import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from kfkd_kit import configs
from kfkd_kit.data import make_faces
from kfkd_kit.keypoints import COMMON_KEYPOINTS, FEATURE_NAMES, KEYPOINTS, columns_of
from kfkd_kit.meta.labellers import LabellerBias, group_of_keypoints
from kfkd_kit.meta.tta import flip_tta

COMMON_COLUMNS = columns_of(COMMON_KEYPOINTS)
OFFSET = np.array([3.0, -2.5] * 4, np.float32)    # the 4-point effort's habit, x and y


class ColumnMean(RegressorMixin, BaseEstimator):
    """Predicts each column's mean label whatever the image: it cannot tell the groups apart."""

    def fit(self, X, y):
        self.mean_ = np.nanmean(y, axis=0)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        return np.tile(self.mean_, (len(X), 1)).astype(np.float32)


def planted(n, seed, offset=OFFSET):
    """Synthetic faces; two thirds of the rows label only the 4 common keypoints, and place
    them ``offset`` away from where the 15-point rows would. Returns X, labels, truth of
    each row in its own group's convention, and the group of each row."""
    X, y = make_faces(n, seed=seed)
    four = np.arange(n) % 3 != 0
    labels = y.copy()
    labels[np.ix_(four, [c for c in range(30) if c not in COMMON_COLUMNS])] = np.nan
    labels[np.ix_(four, COMMON_COLUMNS)] += offset
    return X, labels, np.where(four, "4-point", "15-point")


def test_groups_and_offsets_are_measured_exactly_with_a_model_blind_to_them():
    X, y, groups = planted(90, seed=0)
    model = LabellerBias(ColumnMean(), z=0).fit(X, y)    # every offset kept
    assert set(model.groups_) == {"4-point", "15-point"} and model.reference_ == "15-point"
    base = ColumnMean().fit(X, y).predict(X[:1])[0]
    # blind to the images, each group's answer is its own rows' mean label
    truth_15 = np.nanmean(y[groups == "15-point"], axis=0)
    four = model.predict_groups(X[:1], ["4-point"])[0]
    np.testing.assert_allclose(model.predict(X[:1])[0][COMMON_COLUMNS],
                               truth_15[COMMON_COLUMNS], atol=1e-4)
    truth_4 = np.nanmean(y[groups == "4-point"][:, COMMON_COLUMNS], axis=0)
    np.testing.assert_allclose(four[COMMON_COLUMNS], truth_4, atol=1e-4)
    assert not np.allclose(base[COMMON_COLUMNS], truth_15[COMMON_COLUMNS], atol=0.5)


def test_one_labelling_keeps_no_offset_and_predicts_as_the_model():
    X, y = make_faces(60, seed=1)
    model = LabellerBias(ColumnMean()).fit(X, y)
    assert list(model.offsets_) == ["15-point"]
    assert not model.offsets_["15-point"].any()
    np.testing.assert_array_equal(model.predict(X), ColumnMean().fit(X, y).predict(X))


class PixelRidge(RegressorMixin, BaseEstimator):
    """Ridge regression of each keypoint column on the image, shrunk 4x, fitted on the rows
    that label the column: it sees the faces, not which effort labelled them."""

    def fit(self, X, y):
        from sklearn.linear_model import Ridge
        small = self._small(X)
        self.models_ = [Ridge(alpha=10.0).fit(small[np.isfinite(c)], c[np.isfinite(c)])
                        for c in np.asarray(y).T]
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        small = self._small(X)
        return np.stack([m.predict(small) for m in self.models_], axis=1).astype(np.float32)

    @staticmethod
    def _small(X):
        return np.asarray(X, np.float32).reshape(len(X), 24, 4, 24, 4).mean((2, 4)).reshape(len(X), -1) / 255


def test_a_model_of_the_images_recovers_most_of_a_planted_offset():
    X, y, groups = planted(1200, seed=2)
    train, held = np.arange(900), np.arange(900, 1200)
    model = LabellerBias(PixelRidge()).fit(X[train], y[train])
    truth, four = y[held], groups[held] == "4-point"
    plain = model.estimator_.predict(X[held])
    aware = model.predict_groups(X[held], groups[held])

    def bias(pred, rows):
        return np.nanmean(pred[rows][:, COMMON_COLUMNS] - truth[rows][:, COMMON_COLUMNS], axis=0)

    # the plain model sits between the two conventions; the aware one on each group's own
    for rows in (four, ~four):
        assert np.abs(bias(plain, rows)).mean() > 0.5
        assert np.abs(bias(aware, rows)).mean() < 0.4 * np.abs(bias(plain, rows)).mean()
    rmse = lambda p: np.sqrt(np.nanmean((p - truth) ** 2))
    assert rmse(aware) < rmse(plain)


def test_flip_tta_goes_inside_so_the_offset_is_added_once():
    X, y, groups = planted(90, seed=3)
    model = LabellerBias(ColumnMean()).fit(X, y)
    tta = flip_tta(model)
    assert isinstance(tta, LabellerBias)
    np.testing.assert_allclose(tta.predict_groups(X[:3], ["4-point"] * 3)
                               - flip_tta(model.estimator_).predict(X[:3]),
                               np.tile(model.offsets_["4-point"], (3, 1)), atol=1e-4)


def test_group_of_keypoints_matches_exactly_else_the_fullest():
    groups = {"15-point": list(KEYPOINTS), "4-point": list(COMMON_KEYPOINTS)}
    assert group_of_keypoints(groups, reversed(COMMON_KEYPOINTS)) == "4-point"
    assert group_of_keypoints(groups, COMMON_KEYPOINTS[:2]) == "15-point"


def test_needs_an_estimator():
    with pytest.raises(ValueError, match="needs an estimator"):
        LabellerBias().fit(np.zeros((2, 9216), np.uint8), np.zeros((2, 30)))


def test_each_test_image_gets_the_group_of_the_keypoints_the_lookup_asks_of_it():
    import pandas as pd
    from kfkd_kit.meta.labellers import lookup_groups
    X, y, _ = planted(90, seed=4)
    model = LabellerBias(ColumnMean()).fit(X, y)
    four = [FEATURE_NAMES[c] for c in COMMON_COLUMNS]
    lookup = pd.DataFrame({"RowId": range(1, 39), "ImageId": [7] * 8 + [9] * 30,
                           "FeatureName": four + list(FEATURE_NAMES)})
    assert lookup_groups(model, [9, 7, 8], lookup) == ["15-point", "4-point", "15-point"]
    assert lookup_groups(ColumnMean(), [7], lookup) is None
