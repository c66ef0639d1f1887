"""Flip test-time augmentation: average a model's predictions on an image and its mirror."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone

from .keypoints import mirror_images, mirror_targets


class FlipTTA(RegressorMixin, BaseEstimator):
    """Wraps any keypoint model (uint8 images in, (n, 30) pixels out).

    ``predict`` = mean of the prediction for each image and the un-mirrored prediction for
    its mirror image (x reflected back, left/right columns swapped back). ``fit`` fits a
    clone of ``estimator``; an already fitted model can be wrapped with ``prefit=True``.
    """

    def __init__(self, estimator=None, prefit=False):
        self.estimator = estimator
        self.prefit = prefit

    def fit(self, X, y):
        self.estimator_ = self.estimator if self.prefit else clone(self.estimator).fit(X, y)
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def _model(self):
        if hasattr(self, "estimator_"):
            return self.estimator_
        if self.prefit:
            return self.estimator
        raise ValueError("FlipTTA is not fitted; call fit or wrap a fitted model with prefit=True")

    def predict(self, X):
        model = self._model()
        X = np.asarray(X)
        direct = model.predict(X)
        mirrored = mirror_targets(model.predict(mirror_images(X)))
        return (direct + mirrored) / 2
