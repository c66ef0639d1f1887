"""Mini-batches drawn from tensors that stay on the training device.

The data sets here are small (a few hundred MB at most), so instead of a DataLoader that
builds each batch sample by sample on the host, the whole of X and y is put on the device
once per fit (see ``KeypointNet.get_dataset``) and each batch is one indexing operation.
Used as skorch's ``iterator_train`` / ``iterator_valid``, so callbacks, Pipeline, CV, grid
search and pickling all keep working.
"""
from __future__ import annotations

import math

import torch
from torch.utils.data import Subset

from .keypoints import mirror_images, mirror_targets


def _tensors_of(dataset):
    """(X, y, indices or None) of a skorch Dataset, possibly wrapped in a Subset.

    The indices go to X's device once per Subset (kept on it): a copy from pageable host
    memory waits for the device's queue to drain, which every epoch would cost a stall.
    """
    outer = dataset
    indices = None
    while isinstance(dataset, Subset):
        sub = torch.as_tensor(dataset.indices, dtype=torch.long)
        indices = sub if indices is None else sub[indices]
        dataset = dataset.dataset
    X, y = dataset.X, dataset.y
    if not torch.is_tensor(X):
        X = torch.as_tensor(X)
    if y is not None and not torch.is_tensor(y):
        y = torch.as_tensor(y)
    if indices is not None and indices.device != X.device:
        cached = getattr(outer, "_resident_indices", None)
        if (cached is not None and cached[1].device == X.device
                and torch.equal(cached[0], indices)):
            indices = cached[1]
        else:
            device_indices = indices.to(X.device)
            outer._resident_indices = (indices, device_indices)
            indices = device_indices
    return X, y, indices


class ResidentBatches:
    """Iterate over (X_batch, y_batch) by indexing device-resident tensors.

    ``flip=True`` mirrors a random half of every batch (image columns reversed, x targets
    reflected and left/right columns swapped) - for training batches only.
    ``target_columns`` names which of the 30 Kaggle columns y holds (for specialists).
    Shuffling draws from torch's global generator, which ``KeypointNet`` seeds per fit.
    """

    def __init__(self, dataset, batch_size=128, shuffle=False, flip=False,
                 target_columns=None, drop_last=False):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.flip = flip
        self.target_columns = target_columns
        self.drop_last = drop_last

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def epoch_rows(self):
        """(X, y, order, n) for one epoch: order holds the row of X for each position
        (shuffled when asked), or is None for rows 0 ... n-1 in turn."""
        X, y, indices = _tensors_of(self.dataset)
        n = len(indices) if indices is not None else len(X)
        if self.shuffle:
            order = torch.randperm(n, device=X.device)
            if indices is not None:
                order = indices[order]
        else:
            order = indices
        return X, y, order, n

    def __iter__(self):
        X, y, order, n = self.epoch_rows()
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            if order is None:
                Xb = X[start:start + self.batch_size]
                yb = None if y is None else y[start:start + self.batch_size]
            else:
                rows = order[start:start + self.batch_size]
                # index_select, not X[rows]: the same rows, 3x faster on CPU
                Xb = X.index_select(0, rows)
                yb = None if y is None else y.index_select(0, rows)
            if self.flip:
                Xb, yb = flip_half(Xb, yb, self.target_columns)
            yield Xb, yb


def flip_half(Xb, yb, target_columns=None):
    """Mirror a random half of the batch (each row with probability 1/2)."""
    chosen = torch.rand(len(Xb), device=Xb.device) < 0.5
    Xb = torch.where(chosen[:, None], mirror_images(Xb), Xb)
    if yb is not None:
        yb = torch.where(chosen[:, None], mirror_targets(yb, target_columns, unit=True), yb)
    return Xb, yb
