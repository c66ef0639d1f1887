"""skorch callbacks: the tutorial's epoch table columns, linear schedules and early
stopping; pre-training from a saved model; net8's one-cycle learning rate and weight
averaging.

A callback whose state carries from one epoch to the next (beyond the weights, the
optimizer and the history) has ``run_state()`` and ``restore_run_state(net, state)``: the
run's checkpoints save it and a resumed run puts it back (runs.py), so that the resumed run
goes on exactly as the uninterrupted one."""
from __future__ import annotations

import math
import re
import sys

import torch
from skorch.callbacks import Callback, LRScheduler, PrintLog
from skorch.callbacks import EarlyStopping as SkorchEarlyStopping
from torch.optim.lr_scheduler import OneCycleLR
from torch.optim.swa_utils import AveragedModel

from ..keypoints import SCALE

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class TrainValidRatio(Callback):
    """Adds ``train/val`` (train loss / valid loss) and ``valid_rmse_px`` to the history.

    The losses are the criterion's (the squared error; net8's absolute error) in the net's
    unit scale (pixels / 48), averaged per batch.
    ``valid_rmse_px`` is the competition's number for the validation rows: the RMSE in
    pixels over all their labelled values, summed on the device during the validation
    pass (so a batch with few labels weighs what its labels weigh). PrintLog (which
    skorch always runs last) shows both in the per-epoch table.
    """

    def on_epoch_begin(self, net, **kwargs):
        self.sums_ = None

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        if training or y_pred is None or batch is None or batch[1] is None:
            return
        target = batch[1]
        labelled = torch.isfinite(target)
        error = torch.where(labelled, y_pred.detach().float() - target, 0.0)
        sums = torch.stack([error.pow(2).sum(), labelled.sum().float()])
        self.sums_ = sums if self.sums_ is None else self.sums_ + sums

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        if "valid_loss" not in row:
            return
        valid = row["valid_loss"]
        net.history.record("train/val", row["train_loss"] / valid if valid else math.inf)
        squared, count = (float(v) for v in self.sums_) if self.sums_ is not None else (0.0, 0.0)
        net.history.record("valid_rmse_px", math.sqrt(squared / count) * SCALE if count else math.nan)
        self.sums_ = None


class EarlyStopping(SkorchEarlyStopping):
    """skorch's EarlyStopping on the valid loss, restoring the best weights at the end,
    and off while ``patience`` is None: every named net carries one, so
    ``set_params(net__callbacks__early_stopping__patience=N)`` turns it on."""

    def __init__(self, patience=None, monitor="valid_loss", load_best=True, **kwargs):
        super().__init__(monitor=monitor, patience=patience, load_best=load_best, **kwargs)

    def on_train_begin(self, net, **kwargs):
        if self.patience is not None and (self.patience < 1 or int(self.patience) != self.patience):
            raise ValueError(f"early stopping patience must be a positive integer, got {self.patience!r}")
        if self.patience and net.resolved_train_split() is None:
            raise ValueError("early stopping needs a validation split (valid_fraction > 0)")
        super().on_train_begin(net, **kwargs)

    def on_epoch_end(self, net, **kwargs):
        if self.patience:
            super().on_epoch_end(net, **kwargs)

    def on_train_end(self, net, **kwargs):
        if self.patience:
            super().on_train_end(net, **kwargs)

    def run_state(self):
        """Its count of epochs without improvement, the best score and the best weights."""
        if not self.patience:
            return None
        return {"misses_": int(self.misses_), "best_epoch_": int(self.best_epoch_),
                "dynamic_threshold_": float(self.dynamic_threshold_),
                # replaced, never changed in place, once taken: no copy needed
                "best_model_weights_": self.best_model_weights_}

    def restore_run_state(self, net, state):
        for key, value in state.items():
            setattr(self, key, value)


class PretrainedLayers(Callback):
    """Starts a fresh net from another model's weights: every layer but the output
    (whose width may differ, as for the specialists), when training begins.

    ``source``: a saved model's path (``make train`` output) or a fitted model, best
    wrapped in ``sklearn.frozen.FrozenEstimator`` so that ``clone`` keeps it fitted.
    A net that carries on training (``partial_fit``) is not reset.
    """

    def __init__(self, source=None):
        self.source = source

    def on_train_begin(self, net, **kwargs):
        if self.source is None or len(net.history):
            return
        from .nets import transfer_weights
        with torch.no_grad():
            transfer_weights(source_module(self.source), net.module_)


def source_module(model):
    """The torch module of a saved model (a path), a fitted Pipeline or net, or a
    FrozenEstimator of one."""
    from pathlib import Path
    if isinstance(model, (str, Path)):
        from ..utils.modelfile import load_model   # its sha256 checked, .joblib or .skops
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such model to pre-train from")
        model = load_model(path)
    from .nested import nets
    found = list(nets(model).values())
    module = getattr(found[0], "module_", None) if len(found) == 1 else None
    if module is None:
        raise ValueError(f"cannot pre-train from {type(model).__name__}: not a fitted single net")
    return module


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
        value = self.value_at(epoch, planned_epochs(net))
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
        # a budget's planned_epochs (recorded before the row is shown) is said in words
        keys = [k for k in super()._sorted_keys(keys) if k != "planned_epochs"]
        first = [k for k in self.FIRST if k in keys]
        return first + [k for k in keys if k not in first]

    def on_epoch_end(self, net, **kwargs):
        # PrintLog formats the table even when it prints nothing; a sink of one's own
        # gets every row
        if net.verbose or self.sink is not print:
            super().on_epoch_end(net, **kwargs)

    def format_row(self, row, key, color):
        text = super().format_row(row, key, color)
        return text if sys.stdout.isatty() else _ANSI.sub("", text)


def planned_epochs(net) -> int:
    """The epochs a fit runs: ``max_epochs``, or what its time budget chose."""
    return getattr(net, "planned_epochs_", None) or net.max_epochs


class OneCycle(LRScheduler):
    """skorch's LRScheduler stepping torch's OneCycleLR after every training batch.

    OneCycleLR needs the run's total number of steps; this works it out when training
    begins (the planned epochs x batches per epoch of the training split), so the same
    callback fits any data size, fold or grid point, and again (``replan``) when a time
    budget has fixed the epochs. Its other parameters are OneCycleLR's
    (``policy``, ``step_every`` and ``monitor`` are LRScheduler's, kept for ``clone``).
    """

    def __init__(self, max_lr=3e-3, pct_start=0.25, div_factor=25.0, final_div_factor=1e4,
                 anneal_strategy="cos", event_name="event_lr", policy=OneCycleLR,
                 step_every="batch", monitor="train_loss"):
        super().__init__(policy=policy, step_every=step_every, monitor=monitor,
                         event_name=event_name, max_lr=max_lr, pct_start=pct_start,
                         div_factor=div_factor, final_div_factor=final_div_factor,
                         anneal_strategy=anneal_strategy)

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        train, _ = net.get_split_datasets(X, y)
        batch_size = net.get_params().get("iterator_train__batch_size", net.batch_size)
        self.steps_per_epoch_ = math.ceil(len(train) / batch_size)
        self._set_total_steps(net)
        super().on_train_begin(net, X=X, y=y, **kwargs)

    def _set_total_steps(self, net):
        steps = planned_epochs(net) * self.steps_per_epoch_
        # OneCycleLR divides by zero when its warm-up phase is under two steps; a run that
        # short (a smoke test) then stops part-way along a slightly longer cycle instead.
        self.total_steps_ = max(steps, math.ceil(2 / self.pct_start) + 1)

    def replan(self, net):
        """The same cycle over the net's newly planned epochs, carrying on from the batches
        already run (called by a budgeted fit once it has timed its first epochs)."""
        self._set_total_steps(net)
        self.lr_scheduler_ = self._get_scheduler(net, self.policy_, **self.kwargs)

    def _get_scheduler(self, net, policy, **scheduler_kwargs):
        scheduler_kwargs["total_steps"] = self.total_steps_
        # resumed (runs.Resume loaded a history): carry on from the batches already run
        scheduler_kwargs["last_epoch"] = self.batch_idx_ - 1 if len(net.history) else -1
        return super()._get_scheduler(net, policy, **scheduler_kwargs)


class WeightAverage(Callback):
    """An exponential moving average of the weights (and batch-norm statistics), put into
    the net when training ends: ``torch.optim.swa_utils.AveragedModel`` with an EMA rule.

    After training step t the average moves towards the weights by max(1 - decay,
    9 / (10 + t)): early on it follows them closely (the average spans about the last
    tenth of the steps so far, so it never drags in the random initial weights), later
    it spans about 1 / (1 - decay) steps. The per-epoch valid losses are the raw
    weights'; the fitted net carries the average.
    """

    def __init__(self, decay=0.998):
        self.decay = decay

    def _average(self, averaged, current, n_averaged):
        # AveragedModel's multi_avg_fn: one fused lerp over all float tensors, in place
        rate = max(1.0 - self.decay, 9.0 / (10.0 + float(n_averaged)))
        floats = [(a, c) for a, c in zip(averaged, current) if a.is_floating_point()]
        if floats:
            torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], rate)
        for a, c in zip(averaged, current):
            if not a.is_floating_point():   # batch-norm step counters: the latest
                a.copy_(c)

    def on_train_begin(self, net, **kwargs):
        self.average_ = AveragedModel(net.module_, multi_avg_fn=self._average, use_buffers=True)

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.average_.update_parameters(net.module_)

    def on_train_end(self, net, **kwargs):
        with torch.no_grad():
            for mine, averaged in zip(net.module_.state_dict().values(),
                                      self.average_.module.state_dict().values()):
                mine.copy_(averaged)
        self.average_ = None  # not pickled with the model

    def run_state(self):
        """The average so far: its weights, batch-norm statistics and count of steps."""
        if getattr(self, "average_", None) is None:
            return None
        return {key: value.detach().clone() for key, value in self.average_.state_dict().items()}

    def restore_run_state(self, net, state):
        self.average_.load_state_dict(state)
