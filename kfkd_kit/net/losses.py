"""Mean squared and absolute errors that ignore missing (NaN) targets."""
from __future__ import annotations

import torch
from torch import nn


def _labelled_errors(y_pred, y_true):
    """(errors with 0 where the target is missing, the count of labelled values, at least 1)."""
    labelled = ~torch.isnan(y_true)
    diff = torch.where(labelled, y_pred - torch.nan_to_num(y_true), torch.zeros_like(y_pred))
    return diff, labelled.sum().clamp(min=1)


class MaskedMSELoss(nn.Module):
    """Mean of squared errors over the labelled (non-NaN) target values only.

    With complete targets it equals ``nn.MSELoss``. A batch with no labels gives 0
    (and no gradient) rather than NaN. Written without data-dependent control flow so it
    can run inside a captured CUDA graph.
    """

    def forward(self, y_pred, y_true):
        diff, count = _labelled_errors(y_pred, y_true)
        return diff.pow(2).sum() / count


class MaskedL1Loss(nn.Module):
    """Mean of absolute errors over the labelled (non-NaN) target values only: less pull
    from the few badly labelled keypoints than the squared error. Same conventions as
    :class:`MaskedMSELoss` (0 for a batch with no labels; no data-dependent control flow)."""

    def forward(self, y_pred, y_true):
        diff, count = _labelled_errors(y_pred, y_true)
        return diff.abs().sum() / count
