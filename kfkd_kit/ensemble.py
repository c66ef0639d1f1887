"""``FoldEnsemble``: the k models of a cross-validation, saved and used as one estimator.

Each fold's model is a fitted Pipeline (pixels in, keypoints in pixels out); the ensemble
predicts the mean of their predictions. It is an ordinary scikit-learn regressor, so
``joblib.dump`` / ``joblib.load`` and ``make submit MODEL=models/<net>-cv5.ensemble.joblib``
work exactly as for a single model::

    ensemble = FoldEnsemble(configs.build("net1", verbose=0), cv=5).fit(X, y)
    keypoints = ensemble.predict(X_test)          # (n, 30) pixels

``selection.cross_validate_net(..., keep_models=True)`` builds one from the models it has
already fitted (no refit) with :meth:`FoldEnsemble.from_fitted`.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.model_selection import KFold, check_cv
from sklearn.utils.validation import check_is_fitted

from .metrics import PixelRMSEScore, check_images_and_targets


class FoldEnsemble(PixelRMSEScore, RegressorMixin, BaseEstimator):
    """Mean of the pixel predictions of one fitted clone of ``estimator`` per CV fold.

    Parameters
    ----------
    estimator : scikit-learn estimator (typically ``configs.build(...)``'s Pipeline)
        The template; ``fit`` trains a clone of it on the training part of every fold.
    cv : int, cross-validation splitter or iterable of (train, test) index arrays
        An int k means ``KFold(k, shuffle=True, random_state=random_state)``.
    random_state : int
        Seed of the default shuffled KFold (ignored when ``cv`` is a splitter or list).

    Attributes (after ``fit`` or ``from_fitted``)
    ----------
    estimators_ : list of fitted estimators, one per fold
    folds_ : list of (train, test) index arrays, or None when not known
    n_features_in_ : int

    ``score`` is the negative RMSE in pixels over labelled values (metrics.PixelRMSEScore).
    """

    def __init__(self, estimator=None, cv=5, random_state=0):
        self.estimator = estimator
        self.cv = cv
        self.random_state = random_state

    def _splitter(self):
        if isinstance(self.cv, int):
            return KFold(self.cv, shuffle=True, random_state=self.random_state)
        return check_cv(self.cv)

    def fit(self, X, y):
        """Fit a clone of ``estimator`` on the training rows of every fold. NaN targets
        pass through unchanged (the nets ignore them)."""
        if self.estimator is None:
            raise ValueError("FoldEnsemble needs an estimator to fit")
        X, y = check_images_and_targets(self, X, y)
        folds = [(np.asarray(train), np.asarray(test))
                 for train, test in self._splitter().split(X, y)]
        if not folds:
            raise ValueError("FoldEnsemble: the cross-validation gave no folds")
        self.estimators_ = [clone(self.estimator).fit(X[train], y[train])
                            for train, _ in folds]
        self.folds_ = folds
        return self

    @classmethod
    def from_fitted(cls, estimators, folds=None, template=None, cv=None, random_state=0):
        """An ensemble of already fitted estimators (e.g. a cross-validation's fold models)."""
        estimators = list(estimators)
        if not estimators:
            raise ValueError("FoldEnsemble.from_fitted needs at least one fitted estimator")
        ensemble = cls(estimator=template, cv=len(estimators) if cv is None else cv,
                       random_state=random_state)
        ensemble.estimators_ = estimators
        ensemble.folds_ = None if folds is None else [
            (np.asarray(train), np.asarray(test)) for train, test in folds]
        first = estimators[0]
        ensemble.n_features_in_ = getattr(first, "n_features_in_", None)
        return ensemble

    def predict(self, X):
        """Mean over the fold models of their predictions: (n, n_outputs) pixels."""
        check_is_fitted(self, "estimators_")
        total = None
        for estimator in self.estimators_:
            pred = np.asarray(estimator.predict(X), dtype=np.float64)
            total = pred if total is None else total + pred
        return (total / len(self.estimators_)).astype(np.float32)

    def predict_each(self, X):
        """Every fold model's predictions, stacked: (n_models, n, n_outputs) pixels."""
        check_is_fitted(self, "estimators_")
        return np.stack([np.asarray(e.predict(X), dtype=np.float32) for e in self.estimators_])

    def __sklearn_is_fitted__(self):
        return hasattr(self, "estimators_")
