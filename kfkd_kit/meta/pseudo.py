"""Pseudo-labels: a first model labels unlabelled images (the competition's test images are
given, their labels are not); where its views of an image agree, those labels join the
training rows of a second model.

The views are the flip TTA grid's: the image and its mirror, each on a 3x3 grid of
``shift``-pixel shifts (18 predictions, each moved back). A keypoint is kept when every view
lies within ``agree_px`` pixels of the views' mean, and its label is that mean; the others
stay missing (NaN), which the masked loss ignores. So a hard face still teaches its easy
keypoints, and a keypoint the model is unsure of teaches nothing.

``weight`` 1/k puts every labelled row k times into the second model's epochs and each
pseudo-labelled row once: a row weight in expectation, each copy with its own augmentation.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

from ..keypoints import flip_shift_pairs, moved_back
from ..net.metrics import PixelRMSEScore, check_images, check_images_and_targets

__all__ = ["PseudoLabels", "agreeing_labels", "views"]


def views(model, X, shift=2) -> np.ndarray:
    """(18, n, 30) pixels: ``model``'s prediction for each image and its mirror (mirrored
    back about the model's axis), on each of the 3x3 grid of shifts (moved back); 2 views
    for shift 0. Flip TTA averages each pair; here they stay apart, to be compared."""
    from ..net.estimator import flip_axis_of   # torch only when a model predicts
    predict = lambda images: np.asarray(model.predict(images), dtype=np.float64)  # noqa: E731
    return np.stack([moved_back(view, dx, dy)
                     for (dx, dy), *pair in flip_shift_pairs(predict, np.asarray(X),
                                                             flip_axis_of(model), shift)
                     for view in pair])


def agreeing_labels(stack, agree_px) -> np.ndarray:
    """(n, 30) labels from views (v, n, 30): the views' mean where every view of a keypoint
    lies within ``agree_px`` pixels of it (Euclidean), NaN elsewhere."""
    mean = stack.mean(axis=0)
    spread = np.hypot(stack[..., 0::2] - mean[None, :, 0::2],
                      stack[..., 1::2] - mean[None, :, 1::2]).max(axis=0)   # (n, 15)
    keep = np.repeat(spread <= agree_px, 2, axis=1)
    return np.where(keep, mean, np.nan).astype(np.float32)


class PseudoLabels(PixelRMSEScore, RegressorMixin, BaseEstimator):
    """Fit ``estimator`` on (X, y), label ``unlabelled`` where its views agree, and fit a
    fresh clone on both; ``predict`` is that second model's.

    Parameters
    ----------
    estimator : keypoint model
        Any toolkit model (a net8 Pipeline, a SeedEnsemble, ...), cloned twice.
    unlabelled : array (m, 9216) uint8
        The images to label (the test images: given, their labels not).
    weight : float, default 1.0
        A pseudo-labelled row's weight against a labelled row's: 1/k for an integer k >= 1.
    agree_px : float, default 1.0
        How far, in pixels, any view of a keypoint may lie from the views' mean for the
        keypoint to be kept.
    shift : int, default 2
        The shift grid's step in pixels (0: the image and its mirror only).
    first_share : float, default 0.4
        With ``budget``, the first model's share of it; the second gets the rest.
    budget : float or None, default None
        Seconds for both fits together, shared out by ``first_share`` (the estimator's own
        net then has none).

    Attributes
    ----------
    first_ : the model that made the labels
    estimator_ : the model trained on labelled and pseudo-labelled rows
    pseudo_labels_ : (m, 30) the labels given (NaN: not kept)
    kept_fraction_ : float, the share of keypoints of the unlabelled images that were kept
    validation_rows_ : the labelled rows the second net held out for validation (None: none)
    """

    def __init__(self, estimator=None, unlabelled=None, weight=1.0, agree_px=1.0, shift=2,
                 first_share=0.4, budget=None):
        self.estimator = estimator
        self.unlabelled = unlabelled
        self.weight = weight
        self.agree_px = agree_px
        self.shift = shift
        self.first_share = first_share
        self.budget = budget

    def _repeats(self) -> int:
        k = 1.0 / float(self.weight) if self.weight > 0 else 0.0
        if not (k >= 1 and abs(k - round(k)) < 1e-6):
            raise ValueError(f"PseudoLabels weight must be 1/k for an integer k >= 1 "
                             f"(1, 0.5, 0.333...), got {self.weight!r}")
        return int(round(k))

    def fit(self, X, y):
        if self.estimator is None or self.unlabelled is None:
            raise ValueError("PseudoLabels needs an estimator and unlabelled images")
        repeats = self._repeats()
        X, y = check_images_and_targets(self, X, y)
        unlabelled = np.asarray(self.unlabelled)
        if unlabelled.ndim != 2 or unlabelled.shape[1] != X.shape[1]:
            raise ValueError(f"PseudoLabels: unlabelled images must be (m, {X.shape[1]}), "
                             f"got {unlabelled.shape}")
        first, second = (_budgeted(self.estimator, self._share(part)) for part in (0, 1))
        self.first_ = first.fit(X, y)
        self.pseudo_labels_ = agreeing_labels(views(self.first_, unlabelled, self.shift),
                                              self.agree_px)
        kept = np.isfinite(self.pseudo_labels_)
        self.kept_fraction_ = float(kept.mean()) if kept.size else 0.0
        rows = kept.any(axis=1)
        X2 = np.concatenate([np.repeat(X, repeats, axis=0), unlabelled[rows].astype(X.dtype)])
        y2 = np.concatenate([np.repeat(y, repeats, axis=0), self.pseudo_labels_[rows]])
        self.estimator_ = second.fit(X2, y2)
        self.validation_rows_ = _labelled_held_out(self.estimator_, X2, y2, len(X), repeats)
        return self

    def _share(self, part):
        if self.budget is None:
            return None
        share = self.first_share if part == 0 else 1 - self.first_share
        return float(self.budget) * share

    def predict(self, X):
        check_is_fitted(self, "estimator_")
        X = check_images(self, X)
        return self.estimator_.predict(X)


def _labelled_held_out(model, X2, y2, n, repeats):
    """The rows of the labelled data (0 .. n-1) that ``model``'s net held out of (X2, y2),
    whose first n * repeats rows are those rows repeated (identical copies are held out
    together)."""
    from ..net.nested import nets
    found = nets(model, fitted=False)
    held = next(iter(found.values())).validation_rows(X2, y2) if found else None
    if held is None:
        return None
    held = np.asarray(held)
    return np.unique(held[held < n * repeats] // repeats)


def _budgeted(estimator, seconds):
    """A clone of ``estimator`` with ``seconds`` as its budget (an ensemble's own, else its
    net's); unchanged without a budget."""
    model = clone(estimator)
    if seconds is None:
        return model
    if "budget" in model.get_params(deep=False):
        return model.set_params(budget=seconds)
    from ..net.nested import net_prefix
    return model.set_params(**{net_prefix(model) + "budget": seconds})
