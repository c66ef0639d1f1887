"""RMSE in pixels over labelled values: the competition's score, honest about NaN targets."""
from __future__ import annotations

import numpy as np


def masked_rmse_px(y_true, y_pred) -> float:
    """Root mean squared error in pixels over the labelled (non-NaN) entries of ``y_true``."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape and y_true.size == y_pred.size and 1 in (y_true.ndim, y_pred.ndim):
        y_pred = y_pred.reshape(y_true.shape)  # one target column, as (n,) or (n, 1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape}, y_pred {y_pred.shape}")
    labelled = ~np.isnan(y_true)
    if not labelled.any():
        return float("nan")
    return float(np.sqrt(np.mean((y_true[labelled] - y_pred[labelled]) ** 2)))


class PixelRMSEScore:
    """``score`` for every kfkd estimator: the negative RMSE in pixels over the labelled
    values (greater is better, the number ``selection.rmse_px_scorer`` gives). R^2, sklearn's
    default for regressors, is undefined where most targets are missing. Also tells
    scikit-learn that y has many columns."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        return tags

    def score(self, X, y, sample_weight=None):
        if sample_weight is not None:
            raise ValueError(f"{type(self).__name__}.score does not support sample weights")
        return -masked_rmse_px(y, self.predict(X))


def check_images_and_targets(estimator, X, y):
    """(X, y) checked as scikit-learn checks them, for ``estimator.fit``: X a dense finite
    2-D array (its dtype kept, uint8 for images), y present with one row per image and
    NaN allowed (unlabelled). Sets ``n_features_in_``."""
    from sklearn.utils import check_array
    from sklearn.utils.validation import validate_data
    if y is None:
        raise ValueError(f"{type(estimator).__name__} requires y to be passed, "
                         "but the target y is None")
    X = validate_data(estimator, X, dtype="numeric", accept_sparse=False, reset=True)
    y = check_array(y, dtype=np.float32, ensure_2d=False, ensure_all_finite="allow-nan",
                    input_name="y")
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    return X, y


def check_images(estimator, X):
    """X checked for ``predict``, against what ``fit`` saw."""
    from sklearn.utils.validation import validate_data
    return validate_data(estimator, X, dtype="numeric", accept_sparse=False, reset=False)
