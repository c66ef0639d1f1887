"""Flip and shift test-time augmentation, checked with models whose answers are known."""
import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from kfkd_kit import keypoints as kp
from kfkd_kit.meta.tta import FlipTTA, flip_tta


class DotFinder(RegressorMixin, BaseEstimator):
    """Puts all 15 keypoints on the image's brightest pixel (Kaggle's 1-based coordinates),
    optionally snapped to the centre of a ``cell``-pixel grid, as a strided net might."""

    def __init__(self, cell=1):
        self.cell = cell

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        rows, cols = np.divmod(np.asarray(X).reshape(len(X), -1).argmax(1), 96)
        snap = lambda v: (v // self.cell) * self.cell + (self.cell - 1) / 2  # noqa: E731
        out = np.empty((len(X), 30))
        # a model without KeypointNets reads as trained before the pixel origin was a setting
        out[:, 0::2] = snap(cols)[:, None] + kp.LEGACY_PIXEL_ORIGIN
        out[:, 1::2] = snap(rows)[:, None] + kp.LEGACY_PIXEL_ORIGIN
        return out


def _dots(positions):
    X = np.zeros((len(positions), kp.N_PIXELS), np.uint8)
    for i, (r, c) in enumerate(positions):
        X[i, r * 96 + c] = 255
    return X


def test_every_shifted_view_is_moved_back_onto_the_dot():
    positions = [(30, 40), (50, 61), (47, 33)]
    X = _dots(positions)
    truth = DotFinder().predict(X)
    tta = flip_tta(DotFinder().fit(X), shift=3)
    views = tta.predict_views(X)
    assert views.shape == (9, 3, 30)
    np.testing.assert_allclose(views, np.broadcast_to(truth, views.shape), atol=1e-9)
    np.testing.assert_allclose(tta.predict(X), truth, atol=1e-4)
    assert flip_tta(DotFinder().fit(X)).predict_views(X).shape == (1, 3, 30)   # shift 0: flip only


def test_the_shift_grid_averages_out_a_grid_snapped_models_error():
    rng = np.random.default_rng(0)
    positions = [tuple(p) for p in rng.integers(20, 76, size=(200, 2))]
    X = _dots(positions)
    truth = DotFinder().predict(X)
    snapped = DotFinder(cell=4).fit(X)
    error = lambda model: np.sqrt(np.mean((model.predict(X) - truth) ** 2))  # noqa: E731
    assert error(flip_tta(snapped, shift=2)) < 0.75 * error(flip_tta(snapped))


def test_fit_refuses_a_bad_shift_and_clone_keeps_it():
    X = _dots([(40, 40)])
    with pytest.raises(ValueError, match="whole number of pixels"):
        FlipTTA(DotFinder(), shift=-2).fit(X)
    from sklearn.base import clone
    assert clone(FlipTTA(DotFinder(), shift=2)).shift == 2
