"""The estimator: a skorch NeuralNetRegressor that takes and returns keypoints in pixels.

``KeypointNet`` adds to skorch's regressor only what this competition needs:
- targets go in and come out in pixels; inside, the net sees (y - 48) / 48 (keypoints.py);
- NaN targets are allowed (the default loss ignores them);
- X and y are put on the training device once per fit and batches are drawn there
  (batches.ResidentBatches);
- a ``seed`` makes a fit reproducible (weights, validation split, batch order, flips).
"""
from __future__ import annotations

import numpy as np
import torch
from skorch import NeuralNetRegressor
from skorch.dataset import Dataset, ValidSplit
from skorch.utils import is_dataset

from .batches import ResidentBatches
from .callbacks import EpochTable
from .keypoints import from_unit, to_unit
from .losses import MaskedMSELoss


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class KeypointNet(NeuralNetRegressor):
    """skorch regressor for keypoints in pixels; see the module docstring.

    Extra parameter: ``seed`` (int) - torch's generators are seeded with it at every
    (re)initialisation, so the same seed on the same CPU gives the same model.
    ``train_split`` defaults to a seeded 20% validation split.
    """

    def __init__(self, module, *args, criterion=MaskedMSELoss, seed=0,
                 iterator_train=ResidentBatches, iterator_valid=ResidentBatches,
                 train_split="default", **kwargs):
        if isinstance(train_split, str) and train_split == "default":
            train_split = ValidSplit(0.2, random_state=seed)
        super().__init__(module, *args, criterion=criterion, iterator_train=iterator_train,
                         iterator_valid=iterator_valid, train_split=train_split, **kwargs)
        self.seed = seed

    def get_default_callbacks(self):
        return [(name, EpochTable() if name == "print_log" else cb)
                for name, cb in super().get_default_callbacks()]

    def initialize(self):
        torch.manual_seed(self.seed)
        return super().initialize()

    def get_dataset(self, X, y=None):
        if is_dataset(X):
            return super().get_dataset(X, y)
        X = torch.as_tensor(np.asarray(X, dtype=np.float32), device=self.device)
        if y is not None:
            y = torch.as_tensor(np.asarray(y, dtype=np.float32), device=self.device)
        return Dataset(X, y)

    # skorch's fit() calls partial_fit(), so targets are scaled here, once.
    def partial_fit(self, X, y=None, classes=None, **fit_params):
        if y is not None:
            y = to_unit(np.asarray(y, dtype=np.float32))
        return super().partial_fit(X, y, classes=classes, **fit_params)

    def predict(self, X):
        """Keypoints in pixels, shape (n, n_outputs)."""
        return from_unit(self.predict_proba(X))
