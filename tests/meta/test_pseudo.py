"""Pseudo-labels: views that agree become labels; the second fit sees them, weighted."""
import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from kfkd_kit import configs
from kfkd_kit.data import make_faces
from kfkd_kit.keypoints import IMAGE_SIDE, LEGACY_PIXEL_ORIGIN as PIXEL_ORIGIN   # a model without nets
from kfkd_kit.meta.pseudo import PseudoLabels, agreeing_labels, views


class BrightestPixel(RegressorMixin, BaseEstimator):
    """Puts every keypoint on the brightest pixel's centre; records what it was fitted on."""

    def __init__(self, budget=None):
        self.budget = budget

    def fit(self, X, y):
        self.fitted_on_ = (np.asarray(X).copy(), np.asarray(y).copy())
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X):
        flat = np.asarray(X).reshape(len(X), -1).argmax(axis=1)
        row, col = np.divmod(flat, IMAGE_SIDE)
        return np.tile(np.stack([col, row], 1) + PIXEL_ORIGIN, (1, 15)).astype(np.float32)


def dots(points):
    X = np.zeros((len(points), IMAGE_SIDE, IMAGE_SIDE), np.uint8)
    for i, (c, r) in enumerate(points):
        X[i, r, c] = 255
    return X.reshape(len(points), -1)


def test_agreeing_labels_keep_a_keypoint_only_where_every_view_is_close():
    stack = np.zeros((4, 2, 30))
    stack[:, 1, 2] = [0.0, 0.0, 0.0, 3.0]        # row 1, keypoint 1: one view 2.25 px off the mean
    labels = agreeing_labels(stack, agree_px=1.0)
    assert np.isnan(labels[1, 2:4]).all()
    assert np.isfinite(labels[0]).all() and np.isfinite(np.delete(labels[1], [2, 3])).all()
    assert np.isfinite(agreeing_labels(stack, agree_px=2.5)).all()


def test_the_views_of_a_shift_and_flip_equivariant_model_agree_exactly():
    X = dots([(40, 30), (60, 70)])
    stack = views(BrightestPixel(), X, shift=2)
    assert stack.shape == (18, 2, 30)
    np.testing.assert_allclose(stack, np.broadcast_to(stack[0], stack.shape))
    np.testing.assert_allclose(stack[0, :, :2], [[40 + PIXEL_ORIGIN, 30 + PIXEL_ORIGIN],
                                                 [60 + PIXEL_ORIGIN, 70 + PIXEL_ORIGIN]])


def test_the_second_fit_sees_the_labelled_rows_and_the_agreeing_pseudo_labels_weighted():
    X, y = dots([(10, 10), (20, 20)]), np.full((2, 30), 5.0, np.float32)
    edge = dots([(1, 50)])            # a 2-px shift moves the dot off the image: views disagree
    unlabelled = np.concatenate([dots([(50, 40)]), edge])
    model = PseudoLabels(BrightestPixel(), unlabelled=unlabelled, weight=0.5, agree_px=0.5,
                         budget=100.0, first_share=0.25).fit(X, y)
    assert model.first_.budget == 25.0 and model.estimator_.budget == 75.0
    seen_X, seen_y = model.estimator_.fitted_on_
    # every labelled row twice (weight 1/2), then the one image whose views agreed
    assert len(seen_X) == 5
    np.testing.assert_array_equal(seen_X[:4], np.repeat(X, 2, axis=0))
    np.testing.assert_array_equal(seen_X[4], unlabelled[0])
    np.testing.assert_allclose(seen_y[4, :2], [50 + PIXEL_ORIGIN, 40 + PIXEL_ORIGIN])
    assert model.kept_fraction_ == 0.5
    np.testing.assert_array_equal(model.predict(unlabelled[:1]), BrightestPixel().predict(unlabelled[:1]))


@pytest.mark.parametrize("weight", [0.0, 0.4, 2.0])
def test_a_weight_that_is_not_one_over_an_integer_is_refused(weight):
    with pytest.raises(ValueError, match="1/k"):
        PseudoLabels(BrightestPixel(), unlabelled=dots([(5, 5)]), weight=weight).fit(
            dots([(5, 5)]), np.zeros((1, 30)))


def test_a_real_net_trains_twice_on_agreeing_labels():
    X, y = make_faces(48, seed=0)
    test, _ = make_faces(16, seed=1)
    net = configs.build("net1", epochs=1, verbose=0, device="cpu", valid_fraction=0.0)
    model = PseudoLabels(net, unlabelled=test, agree_px=50.0, shift=0).fit(X, y)
    assert model.kept_fraction_ == 1.0     # a generous agreement keeps every keypoint
    assert model.first_ is not model.estimator_
    assert model.predict(X[:3]).shape == (3, 30)


def test_a_pipelines_budget_goes_to_its_net():
    from kfkd_kit.meta.pseudo import _budgeted
    net = configs.build("net1", epochs=1, verbose=0)
    assert _budgeted(net, 3.0).named_steps["net"].budget == 3.0
    assert net.named_steps["net"].budget is None          # a clone was changed


@pytest.mark.parametrize("text, value", [("1", 1.0), ("1/2", 0.5), ("0.5", 0.5), ("1/3", 1 / 3)])
def test_train_takes_a_weight_one_over_an_integer(text, value):
    from kfkd_kit.commands._options import weight_fraction
    assert weight_fraction(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["0", "0.3", "2", "x", "1/0"])
def test_train_refuses_any_other_weight(text):
    import argparse
    from kfkd_kit.commands._options import weight_fraction
    with pytest.raises(argparse.ArgumentTypeError, match="1/k"):
        weight_fraction(text)


@pytest.mark.slow
def test_train_shares_its_budget_between_the_two_fits(tmp_path):
    from kfkd_kit.cli import main
    from kfkd_kit.data import write_kaggle_dataset
    from kfkd_kit.utils.modelfile import load_model
    write_kaggle_dataset(tmp_path / "data", n_train=48, n_test=8, seed=0)
    model_path = tmp_path / "m.joblib"
    assert main(["train", "--net", "net1", "--data", str(tmp_path / "data"), "--budget", "4",
                 "--pseudo-labels", "1", "--quiet", "--model", str(model_path)]) == 0
    model = load_model(model_path)
    assert isinstance(model, PseudoLabels) and model.budget == 4.0
    assert model.first_.named_steps["net"].budget == pytest.approx(1.6)
    assert model.estimator_.named_steps["net"].budget == pytest.approx(2.4)
