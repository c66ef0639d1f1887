"""Specialists: one model per group of keypoints, together one estimator for all 30 columns.

As in the tutorial, each specialist trains on the rows labelled for its group (so a group
that most rows label, like the eye centres, sees far more data than the eyebrows), can
start from a saved net's weights (the net's ``pretrained`` callback, ``configs.configure(
..., base=path)``), and mirrors its own left/right pairs when flip augmentation is on.

``Specialists(estimator, groups)`` is a scikit-learn meta-estimator, like
``MultiOutputRegressor``: it fits one clone of ``estimator`` per group. It takes uint8
images and returns (n, 30) pixels, so ``make submit``, cross-validation, grid search and
``joblib.load`` treat it like any single net.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

from ..keypoints import N_TARGETS, SPECIALIST_GROUPS, columns_of
from ..net.metrics import PixelRMSEScore, check_images, check_images_and_targets
from ..net.nested import inner_net, net_prefix, nets


class Specialists(PixelRMSEScore, RegressorMixin, BaseEstimator):
    """One fitted clone of ``estimator`` per keypoint group, each predicting its columns.

    Parameters
    ----------
    estimator : the template (``configs.build("net6")``'s Pipeline for the tutorial's
        specialists). A clone with a KeypointNet inside (nested.py finds it) gets its
        outputs, target columns and seed (the template's seed + the group's index) set for
        its group; any other regressor is fitted on its group's columns as it is.
    groups : {name: keypoint names} (default: the tutorial's six, keypoints.SPECIALIST_GROUPS).

    Attributes
    ----------
    models_, columns_, rows_ : {group: fitted clone}, {group: its columns of y},
        {group: the rows of the training y that label all its columns}
    """

    def __init__(self, estimator=None, groups=None):
        self.estimator = estimator
        self.groups = groups

    def _groups(self):
        return dict(SPECIALIST_GROUPS if self.groups is None else self.groups)

    def _specialised(self, index, columns):
        model = clone(self.estimator)
        if nets(model, fitted=False):   # a kfkd net inside: its own outputs, flips and seed
            prefix = net_prefix(model)
            model.set_params(**{prefix + "module__n_outputs": len(columns),
                                prefix + "iterator_train__target_columns": columns,
                                prefix + "seed": inner_net(model).seed + index})
        return model

    def fit(self, X, y):
        if self.estimator is None:
            raise ValueError("Specialists needs an estimator to clone for each group")
        X, y = check_images_and_targets(self, X, y)
        if y.ndim != 2 or y.shape[1] != N_TARGETS:
            raise ValueError(f"Specialists needs all {N_TARGETS} target columns, got shape {y.shape}")
        groups = self._groups()
        self.columns_, self.models_, self.rows_ = {}, {}, {}
        for i, (name, keypoints) in enumerate(groups.items()):
            columns = columns_of(keypoints)
            rows = np.flatnonzero(np.isfinite(y[:, columns]).all(axis=1))
            if len(rows) < 2:
                raise ValueError(f"specialist {name!r}: only {len(rows)} rows label {keypoints}")
            model = self._specialised(i, columns)
            if nets(model, fitted=False) and inner_net(model).verbose:
                print(f"specialist {i + 1}/{len(groups)} {name}: {len(rows)} rows, "
                      f"columns {len(columns)}")
            self.models_[name] = model.fit(X[rows], y[np.ix_(rows, columns)])
            self.columns_[name] = columns
            self.rows_[name] = rows
        return self

    def predict(self, X):
        """(n, 30) pixels; a column no group covers is NaN."""
        check_is_fitted(self, "models_")
        X = check_images(self, X)
        out = np.full((len(X), N_TARGETS), np.nan, dtype=np.float32)
        for name, model in self.models_.items():
            out[:, self.columns_[name]] = np.asarray(model.predict(X)).reshape(len(X), -1)
        return out
