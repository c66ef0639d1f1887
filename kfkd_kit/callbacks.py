"""skorch callbacks: the tutorial's epoch table columns and linear schedules."""
from __future__ import annotations

import math
import re
import sys

from skorch.callbacks import Callback, PrintLog

from .keypoints import SCALE

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class TrainValidRatio(Callback):
    """Adds ``train/val`` (train loss / valid loss) and ``valid_rmse_px`` to the history.

    The losses are MSE in the net's unit scale, so RMSE in pixels is sqrt(loss) * 48.
    PrintLog (which skorch always runs last) shows them in the per-epoch table.
    """

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        if "valid_loss" not in row:
            return
        valid = row["valid_loss"]
        net.history.record("train/val", row["train_loss"] / valid if valid else math.inf)
        net.history.record("valid_rmse_px", math.sqrt(valid) * SCALE)


class LinearSchedule(Callback):
    """Sets an optimizer setting (``lr``, ``momentum``) linearly from start to stop per epoch.

    Epoch k of max_epochs (k = 0 ... max_epochs - 1) uses
    start + (stop - start) * k / (max_epochs - 1), like the tutorial's AdjustVariable.
    skorch ships a learning-rate scheduler but nothing for momentum, hence this one.
    """

    def __init__(self, name="lr", start=0.03, stop=0.0001):
        self.name = name
        self.start = start
        self.stop = stop

    def value_at(self, epoch, max_epochs):
        if max_epochs <= 1:
            return self.start
        return self.start + (self.stop - self.start) * epoch / (max_epochs - 1)

    def on_epoch_begin(self, net, **kwargs):
        epoch = len(net.history) - 1
        value = self.value_at(epoch, net.max_epochs)
        for group in net.optimizer_.param_groups:
            group[self.name] = value
        net.history.record(self.name, value)


class EpochTable(PrintLog):
    """skorch's PrintLog with the tutorial's column order.

    epoch | train_loss | valid_loss | train/val | valid_rmse_px | (schedules) | dur;
    colours only on a terminal, so logs written to files stay plain.
    """

    FIRST = ("epoch", "train_loss", "valid_loss", "train/val", "valid_rmse_px")

    def _sorted_keys(self, keys):
        keys = super()._sorted_keys(keys)
        first = [k for k in self.FIRST if k in keys]
        return first + [k for k in keys if k not in first]

    def on_epoch_end(self, net, **kwargs):
        if net.verbose:  # PrintLog formats the table even when it prints nothing
            super().on_epoch_end(net, **kwargs)

    def format_row(self, row, key, color):
        text = super().format_row(row, key, color)
        return text if sys.stdout.isatty() else _ANSI.sub("", text)
