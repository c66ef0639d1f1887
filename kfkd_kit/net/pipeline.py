"""The scikit-learn Pipeline: pixel scaling, then the keypoint regressor."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import validate_data

from ..keypoints import N_PIXELS


class PixelScaler(TransformerMixin, BaseEstimator):
    """uint8 grey levels (n, n_pixels) -> float32 in [0, 1]. Stateless.

    ``n_pixels``: the image size it insists on (96 x 96 = 9216; None takes any width).
    """

    def __init__(self, n_pixels=N_PIXELS):
        self.n_pixels = n_pixels

    def fit(self, X, y=None):
        self._check(X, reset=True)
        return self

    def transform(self, X):
        X = self._check(X, reset=not hasattr(self, "n_features_in_"))  # usable unfitted
        return X.astype(np.float32) / np.float32(255.0)

    def _check(self, X, reset):
        X = validate_data(self, X, dtype="numeric", reset=reset)
        if self.n_pixels is not None and X.shape[1] != self.n_pixels:
            raise ValueError(f"expected images as an (n, {self.n_pixels}) array, got shape {X.shape}")
        return X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.transformer_tags.preserves_dtype = ["float32"]  # every input becomes float32
        return tags


def make_pipeline(regressor) -> Pipeline:
    """Pipeline([('pixels', PixelScaler()), ('net', regressor)]); y in pixels in and out."""
    return Pipeline([("pixels", PixelScaler()), ("net", regressor)])
