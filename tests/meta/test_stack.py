"""Stacking's meta-models on planted predictions (no nets): masked labels, NNLS weights, the
ElasticNet's correction of a member's bias, nested CV that never sees a fold's own labels,
and StackedKeypoints as one estimator (clone, joblib, .skops, flip TTA)."""
import joblib
import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin, clone

from kfkd_kit.meta.stack import (METHODS, StackedKeypoints, apply_meta, fit_meta,
                                 nested_cv_predictions)
from kfkd_kit.meta.tta import flip_tta
from kfkd_kit.net.metrics import masked_rmse_px
from kfkd_kit.utils.modelfile import load_model, save_model


def planted(n=120, k=6, seed=0):
    """Labels of k columns (NaN in a third of the rows' first half) and two members: the
    first off by +3 px, the second by -1 px, each with its own noise. (The meta-models work
    column by column on any k; fewer than 30 keep the ElasticNet's test fast.)"""
    rng = np.random.default_rng(seed)
    y = rng.uniform(20, 76, (n, k))
    P = np.stack([y + 3 + rng.normal(0, 0.5, y.shape), y - 1 + rng.normal(0, 0.5, y.shape)])
    y[::3, :k // 2] = np.nan
    fold = np.arange(n) % 4 + 1
    return P, y, fold


class Offset(RegressorMixin, BaseEstimator):
    """A 'fitted' keypoint model: (n, 30) = mean pixel of each image + offset."""

    def __init__(self, offset=0.0):
        self.offset = offset

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        base = np.asarray(X, dtype=np.float64).mean(1, keepdims=True) / 255 * 96
        return np.repeat(base, 30, axis=1) + self.offset


def test_mean_is_the_plain_mean_and_unknown_methods_are_refused():
    P, y, _ = planted(k=30)
    coef, intercept = fit_meta(P, y, "mean")
    assert np.allclose(apply_meta(P, coef, intercept), P.mean(0))
    with pytest.raises(ValueError, match="unknown stacking method 'ridge'"):
        fit_meta(P, y, "ridge")


def test_nnls_recovers_planted_weights_and_ignores_unlabelled_rows():
    rng = np.random.default_rng(1)
    P = rng.uniform(20, 76, (2, 90, 30))
    y = 0.25 * P[0] + 0.75 * P[1]
    y[::2, 3] = np.nan
    P[:, ::2, 3] = 1e4                     # wild predictions where column 3 has no label
    coef, intercept = fit_meta(P, y, "nnls")
    assert np.allclose(coef[[3, 33], 3], [0.25, 0.75], atol=1e-8)
    assert np.allclose(coef[[0, 30], 0], [0.25, 0.75], atol=1e-8)
    assert (coef >= 0).all() and not intercept.any()
    assert np.count_nonzero(coef[:, 5]) <= 2          # only the members' own column 5


def test_elasticnet_corrects_a_members_bias_that_the_mean_keeps():
    P, y, fold = planted()
    scores = {m: masked_rmse_px(y, nested_cv_predictions(P, y, fold, m)) for m in METHODS}
    assert scores["mean"] == pytest.approx(1.0, abs=0.1)      # (+3 - 1) / 2 off
    assert scores["elasticnet"] < 0.5 < scores["mean"]
    assert scores["nnls"] < scores["mean"]


def test_nested_cv_never_sees_the_folds_own_labels():
    P, y, fold = planted(k=4)
    changed = y.copy()
    changed[fold == 2] += 50                           # fold 2's labels only
    for method in METHODS:
        before = nested_cv_predictions(P, y, fold, method)
        after = nested_cv_predictions(P, changed, fold, method)
        assert np.array_equal(before[fold == 2], after[fold == 2]), method
        if method != "mean":                           # the mean reads no labels
            assert not np.allclose(before[fold != 2], after[fold != 2]), method
    assert np.array_equal(nested_cv_predictions(P, y, fold, "elasticnet"),
                          nested_cv_predictions(P, y, fold, "elasticnet"))   # deterministic


def test_stacked_keypoints_is_one_estimator(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.integers(0, 256, (8, 9216), dtype=np.uint8)
    members = [Offset(3.0).fit(X), Offset(-1.0).fit(X)]
    coef, intercept = fit_meta(np.zeros((2, 1, 30)), np.full((1, 30), np.nan), "mean")
    coef[:, 0] = 0
    coef[[0, 30], 0] = [0.25, 0.75]
    stack = StackedKeypoints.from_fitted(members, coef, intercept, "nnls", labels=["a", "b"])
    expected = 0.25 * members[0].predict(X) + 0.75 * members[1].predict(X)
    assert stack.predict(X).shape == (8, 30) and stack.predict(X).dtype == np.float32
    assert np.allclose(stack.predict(X)[:, 0], expected[:, 0], atol=1e-4)
    assert stack.member_names() == ["a", "b"]
    assert clone(stack).get_params()["method"] == "nnls"
    path, _ = save_model(stack, tmp_path / "stack.joblib", {"net": "stack"})
    assert np.array_equal(load_model(path).predict(X), stack.predict(X))
    assert np.allclose(flip_tta(stack).predict(X).shape, (8, 30))
    with pytest.raises(ValueError, match="does not fit 3 members"):
        StackedKeypoints.from_fitted(members + members[:1], coef, intercept, "nnls")


@pytest.mark.slow
def test_fit_stacks_fold_ensembles_of_real_nets_and_saves_as_skops(tiny_xy, tmp_path):
    from kfkd_kit import configs
    X, y = tiny_xy
    nets = [configs.build("net1", epochs=1, verbose=0, device="cpu", complete_only=False,
                          lr=lr) for lr in (0.01, 0.03)]
    stack = StackedKeypoints(nets, method="nnls", cv=3, members="folds").fit(X, y)
    assert len(stack.estimators_) == 2 and len(stack.estimators_[0].estimators_) == 3
    assert stack.coef_.shape == (60, 30) and (stack.coef_ >= 0).all()
    path, _ = save_model(stack, tmp_path / "stack.skops", {"net": "stack"})
    assert np.allclose(load_model(path).predict(X[:4]), stack.predict(X[:4]), atol=1e-5)


@pytest.mark.slow
def test_fit_refits_each_member_on_every_row_by_default(tiny_xy):
    from sklearn.base import clone
    from kfkd_kit import configs
    X, y = tiny_xy
    nets = [configs.build("net1", epochs=1, verbose=0, device="cpu", complete_only=False,
                          lr=lr) for lr in (0.01, 0.03)]
    folds = StackedKeypoints(nets, method="nnls", cv=3, members="folds").fit(X, y)
    refit = StackedKeypoints(nets, method="nnls", cv=3).fit(X, y)
    np.testing.assert_array_equal(refit.coef_, folds.coef_)     # one meta-model
    np.testing.assert_array_equal(refit.estimators_[1].predict(X),
                                  clone(nets[1]).fit(X, y).predict(X))
    with pytest.raises(ValueError, match="expected one of refit, folds"):
        StackedKeypoints(nets, members="both").fit(X, y)
