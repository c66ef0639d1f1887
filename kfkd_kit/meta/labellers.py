"""Labeller-aware predictions: rows labelled by different efforts may place a keypoint
differently (Kaggle's training set mixes rows with 4 keypoints and rows with all 15, from two
labelling efforts). One model fitted to both learns their mixture; ``LabellerBias`` measures
each group's own offset and predicts in the convention of the group asked for.

The groups are the rows' labelling patterns (label_checks.labelling_groups: "15-point",
"4-point", ...). After the fit, a group's offset per target column is the mean residual of its
own rows less that of all rows labelling the column: how far its labels sit from the mixture
the model learned, not the model's own bias (which flip or shift TTA may change). An offset is
kept only where it is larger than ``z`` standard errors, so a set labelled in one effort
(faces15) gets none and its predictions do not move; a keypoint only one group labels gets none.
``predict`` gives the reference group's convention (the group labelling the most keypoints,
since predict returns all 15); ``predict_groups`` a group per row, which submit takes from
the keypoints the lookup table asks of each image.

A per-group bias, not a per-group head: the offsets of two labelling efforts are a
placement habit (a constant per keypoint), which a bias models exactly at no training cost.
"""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

from ..data.label_checks import GROUP_MIN_ROWS, labelling_groups
from ..keypoints import KEYPOINTS
from ..net.metrics import PixelRMSEScore, check_images, check_images_and_targets

__all__ = ["LabellerBias", "group_of_keypoints", "lookup_groups"]


def group_of_keypoints(groups: dict, names) -> str:
    """The group (of ``groups``: name -> keypoint names) labelling exactly ``names``, else
    the one labelling the most keypoints."""
    wanted = set(names)
    for group, keypoints in groups.items():
        if set(keypoints) == wanted:
            return group
    return max(groups, key=lambda g: len(groups[g]))


def lookup_groups(model, image_ids, lookup):
    """Each test image's labelling group, by the keypoints Kaggle's lookup table asks of it,
    for a labeller-aware model (one with ``predict_groups``); None for any other."""
    if not hasattr(model, "predict_groups"):
        return None
    from ..data.submission import requested_keypoints
    return [group_of_keypoints(model.groups_, names)
            for names in requested_keypoints(image_ids, lookup)]


class LabellerBias(PixelRMSEScore, RegressorMixin, BaseEstimator):
    """``estimator``'s predictions plus each labelling group's measured offset.

    Parameters
    ----------
    estimator : keypoint model
        Fitted on all rows together (cloned).
    z : float, default 3.0
        An offset is kept where it exceeds ``z`` standard errors of its group's mean residual.

    Attributes
    ----------
    estimator_ : the fitted model
    groups_ : dict, group name -> the keypoint names its rows label (groups of
        GROUP_MIN_ROWS rows or more)
    offsets_ : dict, group name -> (30,) pixels added to the model's predictions (0 where no
        offset was kept)
    reference_ : str, the group ``predict`` answers for
    """

    def __init__(self, estimator=None, z=3.0):
        self.estimator = estimator
        self.z = z

    def fit(self, X, y):
        if self.estimator is None:
            raise ValueError("LabellerBias needs an estimator")
        X, y = check_images_and_targets(self, X, y)
        self.estimator_ = clone(self.estimator).fit(X, y)
        return self.measure(X, y)

    def measure(self, X, y):
        """Each group's offsets from the fitted model's residuals on (X, y)."""
        residual = np.asarray(y, np.float64) - np.asarray(self.estimator_.predict(X), np.float64)
        # the model's own bias (every row's mean residual) is not a group's: only how far a
        # group's rows sit from all rows is
        labelled = np.isfinite(residual)
        overall = np.nan_to_num(residual).sum(axis=0) / np.maximum(labelled.sum(axis=0), 1)
        groups, _ = labelling_groups(y)
        self.groups_, self.offsets_ = {}, {}
        for group in groups:
            if group["count"] < GROUP_MIN_ROWS:
                continue
            r = residual[group["rows"]] - overall
            n = np.isfinite(r).sum(axis=0)
            filled = np.nan_to_num(r)
            mean = filled.sum(axis=0) / np.maximum(n, 1)
            spread = (np.where(np.isfinite(r), filled - mean, 0.0) ** 2).sum(axis=0)
            se = np.sqrt(spread / np.maximum(n - 1, 1) / np.maximum(n, 1))
            kept = (n > 1) & (np.abs(mean) > self.z * se)
            self.groups_[group["group"]] = group["keypoints"]
            self.offsets_[group["group"]] = np.where(kept, mean, 0.0).astype(np.float32)
        if not self.groups_:
            self.groups_ = {f"{len(KEYPOINTS)}-point": list(KEYPOINTS)}
            self.offsets_ = {next(iter(self.groups_)): np.zeros(2 * len(KEYPOINTS), np.float32)}
        self.reference_ = max(self.groups_, key=lambda g: len(self.groups_[g]))
        return self

    def predict(self, X):
        return self.predict_groups(X, None)

    def predict_groups(self, X, groups=None):
        """Predictions for rows of ``groups`` (a group name per row; None: the reference
        group for all; an unknown name: the reference group's offsets)."""
        check_is_fitted(self, "estimator_")
        X = check_images(self, X)
        out = np.asarray(self.estimator_.predict(X), np.float32).copy()
        if groups is None:
            return out + self.offsets_[self.reference_]
        for group in set(groups):
            rows = np.asarray(groups) == group
            out[rows] += self.offsets_.get(group, self.offsets_[self.reference_])
        return out

    def with_inner(self, wrap):
        """A copy whose fitted model is ``wrap(estimator_)`` (flip TTA goes inside, so the
        offsets are added once, after the views are averaged)."""
        check_is_fitted(self, "estimator_")
        other = LabellerBias(self.estimator, z=self.z)
        other.__dict__.update({k: v for k, v in self.__dict__.items() if k.endswith("_")})
        other.estimator_ = wrap(self.estimator_)
        return other
