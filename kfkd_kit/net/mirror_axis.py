"""The labels' mirror axis of a fit (``KeypointNet(flip_axis=...)``), as a skorch callback:
measured from the training rows when training begins (what flip augmentation mirrors
about), refined from the net's own predictions on them when it ends (what flip TTA mirrors
about). The measurements themselves are data/mirror.py's.
"""
from __future__ import annotations

import numpy as np
import torch
from skorch.callbacks import Callback

from ..keypoints import IMAGE_SIDE, from_unit, image_axis, mirror_images
from .batches import ResidentBatches, _tensors_of


def training_arrays(dataset, at_most=None):
    """(images, keypoints in pixels) of a training dataset's rows as numpy arrays, at most
    ``at_most`` of them (evenly spaced); keypoints None when the dataset has no targets."""
    X, y, rows = _tensors_of(dataset)
    if y is None:
        return None, None
    n = len(rows) if rows is not None else len(X)
    pick = rows
    if at_most is not None and n > at_most:
        pick = torch.linspace(0, n - 1, at_most).round().long().to(X.device)
        pick = rows.index_select(0, pick) if rows is not None else pick
    if pick is not None:
        X, y = X.index_select(0, pick), y.index_select(0, pick)
    return X.detach().cpu().numpy(), from_unit(y.detach().cpu().numpy())


def given_axis(flip_axis) -> float:
    """A ``flip_axis`` other than "auto" as a number of pixels, or a ValueError."""
    try:
        axis = float(flip_axis)
    except (TypeError, ValueError):
        axis = float("nan")
    if not 0 < axis < IMAGE_SIDE:
        raise ValueError(f"flip_axis must be 'auto' or a number of pixels in (0, 96), "
                         f"got {flip_axis!r}")
    return axis


class MirrorAxis(Callback):
    """Sets ``net.flip_axis_`` (a ``KeypointNet`` default callback; the net's training
    batches mirror about it, see ``KeypointNet.get_iterator``).

    When training begins, unless an earlier fit of this net measured it already:
    ``net.flip_axis`` as given, or with "auto" measured from the images and labels of the
    rows the net trains on (mirror.estimate_flip_axis); kept as ``flip_axis_images_`` too.
    When training ends (it runs after every other callback but the table, so after the
    weight average and early stopping's best weights are in place), with "auto": the axis
    that makes flip TTA unbiased on (up to 2000 of) those rows, from the net's own
    predictions (mirror.flip_consistent_axis), where the net fits them to 2.5 px
    (``flip_axis_fit_rmse_px_``). Only for nets whose training batches are ResidentBatches.
    """

    # the net's attributes set here: a new fit (KeypointNet.initialize) starts without them
    fitted_attributes = ("flip_axis_", "flip_axis_images_", "flip_axis_fit_rmse_px_")

    def initialize(self):
        self.rows_ = None
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.rows_ = None
        if not (isinstance(net.iterator_train, type)
                and issubclass(net.iterator_train, ResidentBatches)):
            return
        columns = net.get_params_for("iterator_train").get("target_columns")
        train = None
        if net.flip_axis == "auto":
            train, _ = net.get_split_datasets(X, y)   # the rows the fit trains on
            self.rows_ = (train, columns)
        if getattr(net, "flip_axis_", None) is not None:
            return
        if train is None:
            axis = given_axis(net.flip_axis)
        else:
            from ..data.mirror import estimate_flip_axis
            images, labels = training_arrays(train)
            axis = (image_axis(net.pixel_origin) if labels is None else
                    estimate_flip_axis(images, labels, columns, origin=net.pixel_origin))
        net.flip_axis_ = net.flip_axis_images_ = axis

    def on_train_end(self, net, **kwargs):
        rows, self.rows_ = self.rows_, None   # the data are not kept with the model
        if rows is None or net.flip_axis != "auto":
            return
        from ..data.mirror import MAX_RMSE_TO_REFINE_PX, flip_consistent_axis
        dataset, columns = rows
        images, labels = training_arrays(dataset, at_most=2000)
        if labels is None:
            return
        direct = from_unit(net.predict_proba(images))
        mirrored = from_unit(net.predict_proba(mirror_images(images)))
        axis, rmse = flip_consistent_axis(direct, mirrored, labels, columns)
        net.flip_axis_fit_rmse_px_ = rmse
        if np.isfinite(axis) and rmse <= MAX_RMSE_TO_REFINE_PX and 0 < axis < IMAGE_SIDE:
            net.flip_axis_ = axis

    def __getstate__(self):
        state = dict(self.__dict__)
        state["rows_"] = None   # a fit that failed part-way may still hold its data
        return state
