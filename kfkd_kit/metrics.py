"""RMSE in pixels over labelled values: the competition's score, honest about NaN targets."""
from __future__ import annotations

import numpy as np


def masked_rmse_px(y_true, y_pred) -> float:
    """Root mean squared error in pixels over the labelled (non-NaN) entries of ``y_true``."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape}, y_pred {y_pred.shape}")
    labelled = ~np.isnan(y_true)
    if not labelled.any():
        return float("nan")
    return float(np.sqrt(np.mean((y_true[labelled] - y_pred[labelled]) ** 2)))
