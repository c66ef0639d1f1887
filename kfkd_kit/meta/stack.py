"""Stacking: a meta-model over several models' keypoint predictions, as one estimator.

The members' out-of-fold predictions (each row predicted by the fold model that did not
train on it) are the meta-model's inputs, the labels its targets; a keypoint column's
missing labels are left out of that column's fit, never imputed. The meta-model is a
linear map from every member's 30 columns to the 30 keypoints::

    prediction[:, j] = intercept_[j] + sum_f features[:, f] * coef_[f, j]
    features = member 1's 30 columns, member 2's 30 columns, ...

fitted one column at a time, in one of ``METHODS``:

- ``mean``: the plain mean of the members (what the toolkit's ensembles do);
- ``nnls``: non-negative least squares weights of the members' own column j, no intercept
  (``scipy.optimize.nnls``);
- ``elasticnet``: the plain mean plus an ElasticNet on all members' columns (with an
  intercept) fitted to what the mean leaves, so its penalty shrinks towards the mean, not
  towards a constant; alpha and l1 ratio chosen by an inner cross-validation over image
  groups (``ElasticNetCV``).

``nested_cv_predictions`` scores a method honestly: for each outer fold the meta-model is
fitted on the other folds' out-of-fold rows only. ``StackedKeypoints`` holds the fitted
members and the meta-model: ``predict(X)`` is (n, 30) pixels, like any model here, so
submit, report, predict and flip TTA take it. ``StackedKeypoints.from_fitted`` builds it
from members already fitted (`kfkd stack`: the fold ensembles `kfkd cv --keep-models`
saved, or their nets refitted on every row); ``fit`` does the whole of it itself (members
as fold ensembles over the same grouped folds, the meta-model, then by default each member
refitted on every row).
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

from ..net.metrics import PixelRMSEScore, check_images, check_images_and_targets

__all__ = ["METHODS", "MEMBERS", "StackedKeypoints", "fit_meta", "apply_meta", "nested_cv_predictions"]

METHODS = ("mean", "nnls", "elasticnet")
MEMBERS = ("refit", "folds")     # what a stack's members are (StackedKeypoints' members)
INNER_FOLDS = 3
# a short path (alpha down to 1% of the largest, loose tolerance): the small alphas of a
# long one barely converge on members' nearly collinear predictions and took 40x longer
L1_RATIOS = (0.5, 1.0)
N_ALPHAS = 12
EPS = 1e-2


def _check_predictions(predictions, y=None):
    P = np.asarray(predictions, dtype=np.float64)
    if P.ndim != 3 or P.shape[0] < 1:
        raise ValueError(f"member predictions must be (members, rows, columns), got {P.shape}")
    if not np.isfinite(P).all():
        raise ValueError("member predictions hold NaN or infinite values")
    if y is not None:
        y = np.asarray(y, dtype=np.float64)
        if y.shape != P.shape[1:]:
            raise ValueError(f"labels {y.shape} do not match the members' predictions "
                             f"{P.shape[1:]}")
    return P, y


def features(predictions) -> np.ndarray:
    """(members, n, k) predictions -> (n, members * k): member 1's k columns, member 2's, ..."""
    P = np.asarray(predictions)
    return np.transpose(P, (1, 0, 2)).reshape(P.shape[1], -1)


def _mean_weights(m, k):
    coef = np.zeros((m * k, k))
    for j in range(k):
        coef[np.arange(m) * k + j, j] = 1.0 / m
    return coef


def _inner_splits(groups, n_splits=INNER_FOLDS):
    """The inner CV of ElasticNetCV over image groups (identical images on one side), or
    None when there are too few groups to split."""
    from sklearn.model_selection import GroupKFold
    if groups is None:
        groups = np.arange(0)
    if len(np.unique(groups)) < n_splits:
        return None
    return list(GroupKFold(n_splits).split(np.zeros((len(groups), 1)), groups=groups))


def fit_meta(predictions, y, method="nnls", groups=None) -> tuple[np.ndarray, np.ndarray]:
    """(coef (members * k, k), intercept (k,)) of ``method`` fitted on the members'
    ``predictions`` (members, n, k) against labels ``y`` (n, k), NaN where missing: column j
    is fitted on the rows that label it. ``groups``: each row's image group (identical
    images share one), for the ElasticNet's inner folds; None: every row its own. A column
    with too few labels to fit keeps the plain mean."""
    if method not in METHODS:
        raise ValueError(f"unknown stacking method {method!r}; expected one of "
                         f"{', '.join(METHODS)}")
    P, y = _check_predictions(predictions, y)
    m, n, k = P.shape
    coef, intercept = _mean_weights(m, k), np.zeros(k)
    if method == "mean":
        return coef, intercept
    F = features(P)
    groups = np.arange(n) if groups is None else np.asarray(groups)
    for j in range(k):
        rows = np.flatnonzero(np.isfinite(y[:, j]))
        same = np.arange(m) * k + j
        if method == "nnls":
            if len(rows) < m:
                continue
            from scipy.optimize import nnls
            weights, _ = nnls(F[np.ix_(rows, same)], y[rows, j])
            coef[:, j] = 0.0
            coef[same, j] = weights
        else:
            splits = _inner_splits(groups[rows])
            if splits is None or len(rows) < 2 * INNER_FOLDS:
                continue
            from sklearn.exceptions import ConvergenceWarning
            from sklearn.linear_model import ElasticNetCV
            model = ElasticNetCV(l1_ratio=list(L1_RATIOS), alphas=N_ALPHAS, eps=EPS,
                                 tol=1e-3, max_iter=2000, cv=splits)
            residual = y[rows, j] - F[rows] @ coef[:, j]     # what the mean leaves
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(F[rows], residual)
            coef[:, j] += model.coef_
            intercept[j] = model.intercept_
    return coef, intercept


def apply_meta(predictions, coef, intercept) -> np.ndarray:
    """The meta-model's (n, k) pixels from the members' (members, n, k) predictions."""
    P, _ = _check_predictions(predictions)
    return features(P) @ np.asarray(coef) + np.asarray(intercept)


def nested_cv_predictions(predictions, y, fold, method="nnls", groups=None,
                          on_fold=None) -> np.ndarray:
    """(n, k): each row's meta-prediction from ``method`` fitted on the other folds' rows
    only (``fold``: each row's fold). The honest score of a stack: its RMSE against ``y``.
    ``on_fold``: called after each fold (progress)."""
    P, y = _check_predictions(predictions, y)
    fold = np.asarray(fold)
    if fold.shape != (P.shape[1],):
        raise ValueError(f"need one fold per row: {fold.shape} for {P.shape[1]} rows")
    out = np.empty(P.shape[1:])
    for k in np.unique(fold):
        test, train = fold == k, fold != k
        coef, intercept = fit_meta(P[:, train], y[train], method,
                                   None if groups is None else np.asarray(groups)[train])
        out[test] = apply_meta(P[:, test], coef, intercept)
        if on_fold is not None:
            on_fold()
    return out


class StackedKeypoints(PixelRMSEScore, RegressorMixin, BaseEstimator):
    """Several keypoint models and a linear meta-model over their predictions, as one
    scikit-learn estimator: uint8 images (n, 9216) in, (n, 30) pixels out.

    Parameters
    ----------
    estimators : list of unfitted estimators (``configs.build(...)``), for ``fit``
    method : "mean", "nnls" or "elasticnet" (see the module)
    cv : int, the k of the grouped folds ``fit`` draws (``splits.grouped_kfold``)
    random_state : int, their seed
    members : "refit" (each estimator fitted again on every row after its folds, the
        default: it measured better, docs/RESULTS.md) or "folds" (each member its fold
        models, a FoldEnsemble)

    Attributes (after ``fit`` or ``from_fitted``)
    ----------
    estimators_ : the fitted members; ``fit`` makes each, by ``members``, the estimator
        fitted on every row or a ``FoldEnsemble`` of its k fold models (the models whose
        out-of-fold predictions the meta-model learnt from)
    coef_ : (members * 30, 30), intercept_ : (30,) the meta-model
    member_labels_ : a name for each member (its cv run, for `kfkd stack`)
    n_features_in_ : int
    """

    def __init__(self, estimators=None, method="nnls", cv=5, random_state=0, members="refit"):
        self.estimators = estimators
        self.method = method
        self.cv = cv
        self.random_state = random_state
        self.members = members

    def fit(self, X, y):
        """Each member as a FoldEnsemble over the same grouped folds, their out-of-fold
        predictions, the meta-model on those; then, with ``members="refit"``, each member
        fitted again on every row."""
        from ..data.splits import grouped_kfold, image_groups
        from .ensemble import FoldEnsemble
        if not self.estimators:
            raise ValueError("StackedKeypoints needs estimators to fit")
        if self.members not in MEMBERS:
            raise ValueError(f"members {self.members!r}: expected one of {', '.join(MEMBERS)}")
        X, y = check_images_and_targets(self, X, y)
        folds = grouped_kfold(X, self.cv, self.random_state)
        members, oof = [], []
        for template in self.estimators:
            member = FoldEnsemble(clone(template), cv=folds).fit(X, y)
            predicted = None
            for model, (_, test) in zip(member.estimators_, folds):
                rows = np.asarray(model.predict(X[test]), dtype=np.float32)
                if predicted is None:
                    predicted = np.empty((len(X), rows.shape[1]), np.float32)
                predicted[test] = rows
            members.append(member)
            oof.append(predicted)
        self.coef_, self.intercept_ = fit_meta(np.stack(oof), y, self.method, image_groups(X))
        if self.members == "refit":
            members = [clone(template).fit(X, y) for template in self.estimators]
        self.estimators_ = members
        self.member_labels_ = [f"member {i}" for i in range(1, len(members) + 1)]
        return self

    @classmethod
    def from_fitted(cls, members, coef, intercept, method, labels=None, n_features=None):
        """A stack of members already fitted and a meta-model already fitted (``fit_meta``)."""
        members = list(members)
        if not members:
            raise ValueError("StackedKeypoints.from_fitted needs at least one member")
        coef, intercept = np.asarray(coef, np.float64), np.asarray(intercept, np.float64)
        if intercept.ndim != 1 or coef.shape != (len(members) * len(intercept), len(intercept)):
            raise ValueError(f"a meta-model of shape {coef.shape} + {intercept.shape} does "
                             f"not fit {len(members)} members")
        stack = cls(estimators=None, method=method)
        stack.estimators_ = members
        stack.coef_, stack.intercept_ = coef, intercept
        stack.member_labels_ = list(labels) if labels is not None else [
            f"member {i}" for i in range(1, len(members) + 1)]
        stack.n_features_in_ = n_features or getattr(members[0], "n_features_in_", None)
        return stack

    def predict_members(self, X) -> np.ndarray:
        """Every member's predictions, stacked: (members, n, 30) pixels."""
        check_is_fitted(self, "estimators_")
        if getattr(self, "n_features_in_", None) is not None:
            X = check_images(self, X)
        return np.stack([np.asarray(e.predict(X), dtype=np.float64) for e in self.estimators_])

    def predict(self, X):
        """The meta-model's keypoints from the members' predictions: (n, 30) pixels."""
        check_is_fitted(self, "coef_")
        return apply_meta(self.predict_members(X), self.coef_, self.intercept_).astype(
            np.float32)

    def member_names(self) -> list[str]:
        """A name for each of ``estimators_`` (net/nested.py names the nets inside by it)."""
        return list(self.member_labels_)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "estimators_") and hasattr(self, "coef_")
