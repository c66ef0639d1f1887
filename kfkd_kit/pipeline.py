"""The scikit-learn Pipeline: pixel scaling, then the keypoint regressor."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

from .keypoints import N_PIXELS


class PixelScaler(TransformerMixin, BaseEstimator):
    """uint8 grey levels (n, 9216) -> float32 in [0, 1]. Stateless."""

    def fit(self, X, y=None):
        self._check(X)
        self.n_features_in_ = N_PIXELS
        return self

    def transform(self, X):
        X = self._check(X)
        return X.astype(np.float32) / np.float32(255.0)

    @staticmethod
    def _check(X):
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != N_PIXELS:
            raise ValueError(f"expected images as an (n, {N_PIXELS}) array, got shape {X.shape}")
        return X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


def make_pipeline(regressor) -> Pipeline:
    """Pipeline([('pixels', PixelScaler()), ('net', regressor)]); y in pixels in and out."""
    return Pipeline([("pixels", PixelScaler()), ("net", regressor)])
