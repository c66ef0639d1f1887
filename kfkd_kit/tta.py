"""Flip test-time augmentation: average a model's predictions on an image and its mirror."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.frozen import FrozenEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from .keypoints import N_PIXELS, mirror_images, mirror_targets
from .metrics import PixelRMSEScore, check_images


class FlipTTA(PixelRMSEScore, RegressorMixin, BaseEstimator):
    """Wraps any keypoint model (uint8 images in, (n, 30) pixels out).

    ``predict`` = mean of the prediction for each image and the un-mirrored prediction for
    its mirror image (x reflected back about the axis the model was trained with,
    ``estimator.flip_axis_of``; left/right columns swapped back). ``fit`` fits a
    clone of ``estimator``. For a model that is already fitted, wrap it in sklearn's
    ``FrozenEstimator`` (``flip_tta(model)`` does): then ``fit`` trains nothing and
    ``clone`` keeps the fitted model.
    """

    def __init__(self, estimator=None):
        self.estimator = estimator

    def fit(self, X, y=None):
        if self.estimator is None:
            raise ValueError("FlipTTA needs an estimator")
        X = validate_data(self, X, dtype="numeric", accept_sparse=False)
        self.estimator_ = clone(self.estimator).fit(X, y)
        return self

    def predict(self, X):
        check_is_fitted(self, "estimator_")
        X = check_images(self, X)
        direct = self.estimator_.predict(X)
        from .estimator import flip_axis_of   # torch only when a model is asked to predict
        mirrored = mirror_targets(self.estimator_.predict(mirror_images(X)),
                                  axis=flip_axis_of(self.estimator_))
        return (direct + mirrored) / 2


def flip_tta(model, n_features=None) -> FlipTTA:
    """Flip TTA around an already fitted model, ready to predict (nothing is trained)."""
    n_features = n_features or getattr(model, "n_features_in_", None) or N_PIXELS
    return FlipTTA(FrozenEstimator(model)).fit(np.zeros((1, n_features), np.uint8))
