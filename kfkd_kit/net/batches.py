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

from ..keypoints import (DEFAULT_PIXEL_ORIGIN, affine_images, affine_targets, mirror_images,
                         mirror_targets)


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

    Augmentation, per image, on the batch's device - set it for ``iterator_train`` only:

    - ``flip=True`` mirrors a random half of every batch (image columns reversed, x targets
      reflected and left/right columns swapped);
    - ``rotate`` (degrees), ``scale`` (fraction) and ``shift`` (pixels) are the ranges of a
      random affine map, uniform in [-rotate, rotate], [1 - scale, 1 + scale] and
      [-shift, shift] on each axis; the keypoints move with the image, and one moved out of
      the frame becomes a missing label (keypoints.affine_targets);
    - ``brightness`` and ``contrast`` jitter the grey levels (scaled to [0, 1]): each image
      becomes (X - mean) * c + mean + b, clipped to [0, 1], with c in [1 - contrast,
      1 + contrast] and b in [-brightness, brightness].

    A range of 0 draws nothing, so all-zero ranges give exactly the batches of no
    augmentation. ``flip_axis`` is the labels' mirror axis in pixels (x -> 2 axis - x;
    None: ``keypoints.image_axis()``); a KeypointNet sets it to its measured ``flip_axis_``,
    and ``pixel_origin`` (where affine maps turn and where the frame ends) to its own.
    ``target_columns`` names which of the 30 Kaggle columns y holds (for
    specialists). Shuffling and augmentation draw from torch's global generator, which
    ``KeypointNet`` seeds per fit.
    """

    def __init__(self, dataset, batch_size=128, shuffle=False, flip=False,
                 target_columns=None, drop_last=False, rotate=0.0, scale=0.0, shift=0.0,
                 brightness=0.0, contrast=0.0, flip_axis=None,
                 pixel_origin=DEFAULT_PIXEL_ORIGIN):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.flip = flip
        self.target_columns = target_columns
        self.drop_last = drop_last
        self.rotate = rotate
        self.scale = scale
        self.shift = shift
        self.brightness = brightness
        self.contrast = contrast
        self.flip_axis = flip_axis
        self.pixel_origin = pixel_origin

    @property
    def moves(self) -> bool:
        """Whether batches get a random affine map."""
        return bool(self.rotate or self.scale or self.shift)

    @property
    def jitters(self) -> bool:
        """Whether batches get brightness/contrast jitter."""
        return bool(self.brightness or self.contrast)

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
                Xb, yb = flip_half(Xb, yb, self.target_columns, self.flip_axis)
            if self.moves:
                Xb, yb = random_affine(Xb, yb, self.rotate, self.scale, self.shift,
                                       self.target_columns, self.pixel_origin)
            if self.jitters:
                Xb = jitter_intensity(Xb, self.brightness, self.contrast)
            yield Xb, yb


def flip_half(Xb, yb, target_columns=None, axis=None):
    """Mirror a random half of the batch (each row with probability 1/2); the labels about
    ``axis`` (pixels; None: the image's centre)."""
    chosen = torch.rand(len(Xb), device=Xb.device) < 0.5
    Xb = torch.where(chosen[:, None], mirror_images(Xb), Xb)
    if yb is not None:
        yb = torch.where(chosen[:, None], mirror_targets(yb, target_columns, unit=True, axis=axis), yb)
    return Xb, yb


def _uniform(n, half_width, device, centre=0.0):
    """n draws from U(centre - half_width, centre + half_width)."""
    return centre + (torch.rand(n, device=device) * 2 - 1) * half_width


def random_affine(Xb, yb, rotate=0.0, scale=0.0, shift=0.0, target_columns=None,
                  origin=DEFAULT_PIXEL_ORIGIN):
    """Move every image of the batch, and its keypoints (unit scale, labels of pixel origin
    ``origin``), by its own random rotation (degrees), scaling and shift (pixels) about the
    image centre."""
    n, device = len(Xb), Xb.device
    angle = torch.deg2rad(_uniform(n, rotate, device))
    factor = _uniform(n, scale, device, centre=1.0)
    offset = torch.stack([_uniform(n, shift, device), _uniform(n, shift, device)], dim=1)
    cos, sin = torch.cos(angle) * factor, torch.sin(angle) * factor
    matrix = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    Xb = affine_images(Xb, matrix, offset)
    if yb is not None:
        yb = affine_targets(yb, matrix, offset, target_columns, unit=True, origin=origin)
    return Xb, yb


def jitter_intensity(Xb, brightness=0.0, contrast=0.0):
    """Per image: (X - mean) * c + mean + b, clipped to [0, 1]."""
    n, device = len(Xb), Xb.device
    c = _uniform(n, contrast, device, centre=1.0)[:, None]
    b = _uniform(n, brightness, device)[:, None]
    mean = Xb.mean(dim=1, keepdim=True)
    return ((Xb - mean) * c + mean + b).clamp_(0.0, 1.0)
