"""The estimator: a skorch NeuralNetRegressor that takes and returns keypoints in pixels.

``KeypointNet`` adds to skorch's regressor only what this competition needs:
- targets go in and come out in pixels; inside, the net sees (y - 48) / 48 (keypoints.py);
- NaN targets are allowed (the default loss ignores them);
- X and y are put on the training device once per fit and batches are drawn there
  (batches.ResidentBatches);
- a ``seed`` makes a fit reproducible (weights, validation split, batch order, flips);
- which rows it trains on is its own parameter (``complete_only``), so train, cv, grid and
  zoo hand every net the same rows and score it the same way;
- on CUDA, opted in with ``fast_path`` (configs does for every named net), the training
  step is captured once in a CUDA graph and replayed (fastpath.py).
"""
from __future__ import annotations

import time

import numpy as np
import torch
from skorch import NeuralNetRegressor
from skorch.dataset import Dataset
from skorch.utils import is_dataset

from . import fastpath
from ..utils import malloc, precision as precisions
from .batches import ResidentBatches
from .callbacks import EpochTable
from ..keypoints import IMAGE_AXIS, IMAGE_SIDE, from_unit, to_unit
from .losses import MaskedMSELoss
from .metrics import PixelRMSEScore
from ..data.splits import GroupedValidSplit
from .nested import nets


class _PlanDone(Exception):
    """Ends a budgeted fit's epoch loop: its planned epochs are done (or no time is left)."""


def _training_arrays(dataset, at_most=None):
    """(images, keypoints in pixels) of a training dataset's rows as numpy arrays, at most
    ``at_most`` of them (evenly spaced); keypoints None when the dataset has no targets."""
    from .batches import _tensors_of
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


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class KeypointNet(PixelRMSEScore, NeuralNetRegressor):
    """skorch regressor for keypoints in pixels; see the module docstring.

    Extra parameters:
    ``seed`` (int) - torch's generators are seeded with it at every (re)initialisation,
    and it seeds the validation split, so the same seed on the same CPU gives the same model.
    ``valid_fraction`` - the share of the training rows held out for the epoch table's
    valid loss (0: none). With ``train_split="seeded"`` (the default) the split is
    ``splits.GroupedValidSplit(valid_fraction, random_state=seed)`` (identical images on
    one side), made when the net is fitted; any other ``train_split`` is skorch's own.
    ``complete_only`` - train on the rows with every target labelled only (the tutorial's
    dropna), else on all rows with the masked loss.
    ``fast_path``: False (the default: skorch's plain path), "auto" (CUDA graphs on CUDA
    where they apply, else skorch's plain path; what configs' nets use), True (graphs or
    an error saying why not) or "eager" (the fast step without capture, any device); the
    graphs serve fastpath.SERVES (net1-net7, the specialists; not net8), see fastpath.py.
    ``precision``: "fp32", "bf16" (training and prediction under autocast) or "auto" (bf16
    where the device computes it natively, see precision.py); ``precision_`` is what a fit
    resolved it to.
    ``budget``: seconds that a fit may take, or None. With a budget the net times its first
    epochs and then fixes how many epochs it runs (``planned_epochs_``, recorded in the
    history) so that the fit ends within the budget, its schedules (one-cycle, linear)
    spread over exactly those epochs; ``max_epochs`` is then only the first guess. See
    ``budget_plan_`` for what was measured and chosen.
    ``flip_axis``: the labels' mirror axis in pixels (x -> 2 axis - x) for flip
    augmentation and flip TTA, or "auto" (the default) to measure it from the rows the net
    trains on: from the images and labels before training (mirror.estimate_flip_axis,
    ``flip_axis_images_``, what augmentation uses), then, when training ends, from the
    net's own predictions on those rows where it fits them to 2.5 px
    (mirror.flip_consistent_axis). ``flip_axis_`` is the axis flip TTA uses.
    ``split_seed``: the seed of the validation split, or None (the default) for ``seed``;
    the nets of an ensemble.SeedEnsemble differ in ``seed`` and share one split.
    ``score`` is the negative RMSE in pixels over labelled values (metrics.PixelRMSEScore).
    """

    split_seed = None   # models saved before the parameter existed

    def __init__(self, module, *args, criterion=MaskedMSELoss, seed=0, valid_fraction=0.2,
                 complete_only=False, iterator_train=ResidentBatches,
                 iterator_valid=ResidentBatches, train_split="seeded", fast_path=False,
                 precision="fp32", flip_axis="auto", budget=None, split_seed=None, **kwargs):
        super().__init__(module, *args, criterion=criterion, iterator_train=iterator_train,
                         iterator_valid=iterator_valid, train_split=train_split, **kwargs)
        self.seed = seed
        self.valid_fraction = valid_fraction
        self.complete_only = complete_only
        self.fast_path = fast_path
        self.precision = precision
        self.flip_axis = flip_axis
        self.budget = budget
        self.split_seed = split_seed

    # -- which rows: trained on, and held out for validation ---------------------------
    def resolved_train_split(self):
        """The validation split a fit uses (None for none)."""
        if isinstance(self.train_split, str):
            if self.train_split != "seeded":
                raise ValueError(f"train_split must be 'seeded', None or a callable, "
                                 f"got {self.train_split!r}")
            fraction = self.valid_fraction
            seed = self.seed if self.split_seed is None else self.split_seed
            return GroupedValidSplit(fraction, random_state=seed) if fraction else None
        return self.train_split

    def get_split_datasets(self, X, y=None, **fit_params):
        split = self.resolved_train_split()
        dataset = self.get_dataset(X, y)
        if not split:
            return dataset, None
        return split(dataset, **fit_params) if y is None else split(dataset, y, **fit_params)

    def fit_rows(self, y):
        """Indices of the rows of ``y`` that a fit trains on (all, or the complete ones)."""
        y = np.asarray(y, dtype=np.float32)
        if not self.complete_only:
            return np.arange(len(y))
        return np.flatnonzero(np.isfinite(y.reshape(len(y), -1)).all(axis=1))

    def validation_rows(self, X, y):
        """Indices of the rows that a fit on (X, y) holds out for its valid loss (the rows
        its epoch table reports on), or None when it holds out none."""
        rows = self.fit_rows(y)
        split = self.resolved_train_split()
        if split is None:
            return None
        _, valid = split(Dataset(np.asarray(X)[rows], None), None)
        return rows[np.asarray(valid.indices)]

    def get_default_callbacks(self):
        return [(name, EpochTable() if name == "print_log" else cb)
                for name, cb in super().get_default_callbacks()]

    def initialize(self):
        torch.manual_seed(self.seed)
        self.precision_ = precisions.resolve(self.precision, self.device)
        for fitted in ("flip_axis_", "flip_axis_images_", "flip_axis_fit_rmse_px_",
                       "planned_epochs_", "budget_plan_"):
            self.__dict__.pop(fitted, None)     # a new fit measures and plans again
        return super().initialize()

    def get_iterator(self, dataset, training=False):
        iterator = super().get_iterator(dataset, training=training)
        if training and isinstance(iterator, ResidentBatches):
            if getattr(self, "flip_axis_", None) is None:
                self.flip_axis_ = self._measure_flip_axis(dataset, iterator.target_columns)
                self.flip_axis_images_ = self.flip_axis_
            iterator.flip_axis = self.flip_axis_
            self._train_rows = (dataset, iterator.target_columns)   # for _refine_flip_axis
        return iterator

    def _refine_flip_axis(self):
        """When training ends: the axis that makes flip TTA unbiased on (up to 2000 of) the
        training rows, from the net's own predictions (mirror.flip_consistent_axis), where
        the net fits those rows well enough; augmentation used the images' estimate."""
        dataset, columns = self.__dict__.pop("_train_rows", (None, None))
        if self.flip_axis != "auto" or dataset is None:
            return
        from ..keypoints import mirror_images
        from ..data.mirror import MAX_RMSE_TO_REFINE_PX, flip_consistent_axis
        images, labels = _training_arrays(dataset, at_most=2000)
        if labels is None:
            return
        direct = from_unit(self.predict_proba(images))
        mirrored = from_unit(self.predict_proba(mirror_images(images)))
        axis, rmse = flip_consistent_axis(direct, mirrored, labels, columns)
        self.flip_axis_fit_rmse_px_ = rmse
        if np.isfinite(axis) and rmse <= MAX_RMSE_TO_REFINE_PX and 0 < axis < IMAGE_SIDE:
            self.flip_axis_ = axis

    def _measure_flip_axis(self, dataset, columns):
        """``flip_axis`` as a number: as given, or measured from the training rows."""
        if self.flip_axis != "auto":
            try:
                axis = float(self.flip_axis)
            except (TypeError, ValueError):
                axis = float("nan")
            if not 0 < axis < IMAGE_SIDE:
                raise ValueError(f"flip_axis must be 'auto' or a number of pixels in (0, 96), "
                                 f"got {self.flip_axis!r}")
            return axis
        from ..data.mirror import estimate_flip_axis
        images, labels = _training_arrays(dataset)
        if labels is None:
            return float(IMAGE_AXIS)
        return estimate_flip_axis(images, labels, columns)

    def infer(self, x, **fit_params):
        # Training, validation and prediction all pass through here: one autocast for all.
        # The loss and the outputs stay fp32.
        precision = getattr(self, "precision_", "fp32")
        device_type = torch.device(self.device or "cpu").type
        if precision != "bf16" or torch.is_autocast_enabled(device_type):
            return super().infer(x, **fit_params)  # fp32, or the fast path's own autocast
        with precisions.autocast(precision, self.device):
            return super().infer(x, **fit_params).float()

    def get_dataset(self, X, y=None):
        if is_dataset(X):
            return super().get_dataset(X, y)
        X = torch.as_tensor(np.asarray(X, dtype=np.float32), device=self.device)
        if y is not None:
            y = torch.as_tensor(np.asarray(y, dtype=np.float32), device=self.device)
        return Dataset(X, y)

    def fast_path_reason(self, iterator, fit_params=None):
        """Why the fast path will not run for this iterator, or None when it will."""
        mode = self.fast_path
        if mode not in fastpath.MODES:
            raise ValueError(f"fast_path must be one of {fastpath.MODES}, got {mode!r}")
        if mode is False:
            return "fast_path=False"
        reason = fastpath.unsupported(self, iterator, fit_params)
        if reason is None and mode != "eager":
            device = fastpath.data_device(iterator)
            if device.type != "cuda":
                reason = f"the data are on {device.type}; CUDA graphs need CUDA"
        if reason is not None and mode in (True, "eager"):
            raise ValueError(f"fast_path={mode!r} cannot apply: {reason} (the captured step "
                             f"serves {fastpath.SERVES})")
        return reason

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        trainer = getattr(self, "_fast_trainer", None)
        if not training:
            if trainer is not None:  # one sync for this pass's and the training pass's losses
                return fastpath.run_deferred_epoch(self, iterator, training, prefix, step_fn,
                                                   pending=trainer.pending, **fit_params)
            return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)
        if iterator is None or self.fast_path_reason(iterator, fit_params) is not None:
            self._drop_fast_trainer()
            return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)
        if trainer is None or not trainer.matches(self, iterator):
            self._drop_fast_trainer()
            trainer = self._fast_trainer = fastpath.FastTrainer(
                self, iterator, graphs=self.fast_path != "eager", precision=self.precision_,
                strict=self.fast_path is True)
        trainer.run_epoch(iterator, prefix)

    def _drop_fast_trainer(self):
        trainer = getattr(self, "_fast_trainer", None)
        if trainer is not None:
            trainer.pending.flush()
        self._fast_trainer = None

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        resumed = getattr(self, "resumed_epochs_", 0)
        self.planned_epochs_ = self._resumed_plan() if resumed else self.max_epochs
        if epochs is None and resumed:
            # resumed from a checkpoint (runs.Resume): only the epochs that are left
            epochs = max(self.planned_epochs_ - len(self.history), 0)
        if self.budget is not None and epochs is None:
            epochs = 10 ** 9   # the budget decides (notify raises _PlanDone at the end)
        # On CPU the fast path is glibc keeping freed memory for reuse (see malloc.py).
        on_cpu = torch.device(self.device or "cpu").type == "cpu"
        try:
            with malloc.reuse_freed_memory(on_cpu and self.fast_path is not False):
                return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except _PlanDone:
            return self
        finally:
            self._drop_fast_trainer()  # graphs live for one fit and are never pickled

    def _resumed_plan(self):
        """The epochs a resumed run was planned for: its budget's choice, or max_epochs."""
        planned = [row.get("planned_epochs") for row in self.history]
        return planned[-1] if planned and planned[-1] else self.max_epochs

    # -- a time budget ----------------------------------------------------------------
    def notify(self, method_name, **cb_kwargs):
        plan_done = False
        if method_name == "on_epoch_end" and self.budget is not None:
            # before the callbacks, so that the epoch's checkpoint holds the plan (runs.py);
            # its lines are said after them, below the epoch's row of the table
            self._held_lines = []
            plan_done = self._budget_epoch_end()
        try:
            super().notify(method_name, **cb_kwargs)
        finally:
            for line in self.__dict__.pop("_held_lines", ()):
                self._say(line)
        if method_name == "on_train_begin":
            self._epoch_ends = []
            if self.budget is not None:
                self._check_budget()
        elif plan_done:
            raise _PlanDone
        elif method_name == "on_train_end":   # after the weight average is in place
            self._refine_flip_axis()

    def _check_budget(self):
        try:
            budget = float(self.budget)
        except (TypeError, ValueError):
            budget = float("nan")
        if not budget > 0:
            raise ValueError(f"budget must be a positive number of seconds, got {self.budget!r}")

    def _budget_epoch_end(self) -> bool:
        """After each epoch of a budgeted fit: plan (after the first two epochs, from their
        measured time), record the plan, and say whether the fit ends here: its plan is
        done, or the time left would not hold another epoch."""
        done = len(self.history)
        resumed = getattr(self, "resumed_epochs_", 0)
        now = time.perf_counter()
        elapsed = now - self._fit_started
        budget = float(self.budget)
        # an epoch's wall time, from the end of the one before (callbacks and all; the first
        # from the fit's start, so what came before it is counted in too)
        epoch_s = now - (self._epoch_ends[-1] if self._epoch_ends else self._fit_started)
        self._epoch_ends.append(now)
        # what follows the last epoch (the weight average, the caller's saving) gets a margin
        margin = max(2.0, 0.03 * budget)
        if not resumed and done <= 2:
            epochs = done + max(int((budget - margin - elapsed) // epoch_s), 0)
            self._replan(max(epochs, done), epoch_s, elapsed)
        elif not resumed:
            self._follow_pace(done, elapsed, budget - margin)
        self.history.record("planned_epochs", self.planned_epochs_)
        if done >= self.planned_epochs_:
            return True
        if elapsed + epoch_s > budget - margin / 2:
            # a new dict: a checkpoint being written may hold the old one
            self.budget_plan_ = dict(getattr(self, "budget_plan_", None) or {},
                                     stopped_early=done)
            self._say(f"budget: stopping after epoch {done} of {self.planned_epochs_}: "
                      f"{elapsed:.0f} s of {budget:.0f} s spent and an epoch now takes "
                      f"{epoch_s:.1f} s (slower than when it was planned)")
            return True
        return False

    def _follow_pace(self, done, elapsed, usable):
        """Re-plan when the pace of the epochs has changed since the plan (a busier or a
        quieter machine): fewer epochs as soon as the plan would overrun, more once at least
        max(2, 3%) more fit, so that the schedules still run to their end (the one-cycle's lr
        anneals) within the budget. The pace is the median of the last three epochs after
        the first (which carries the warm-up), so one slow epoch costs its own seconds and
        no more."""
        recent = float(np.median(np.diff(self._epoch_ends[-4:])))   # epochs 2.. end to end
        fits = max(done + int((usable - elapsed) // recent), done)
        was = self.planned_epochs_
        if not (fits < was or fits - was >= max(2, 0.03 * was)):
            return
        self.planned_epochs_ = fits
        # a new dict: a checkpoint being written may hold the old one
        plan = dict(self.budget_plan_)
        plan["epochs"] = int(fits)
        plan["replanned"] = [*plan.get("replanned", []), [done, int(fits), round(recent, 3)]]
        self.budget_plan_ = plan
        self._replan_schedules()
        self._say(f"budget: epochs now take {recent:.1f} s (planned at "
                  f"{plan['seconds_per_epoch']:.1f} s), so {fits} epochs in all instead of "
                  f"{was}; the schedules end with them")

    def _replan(self, epochs, epoch_s, elapsed):
        first = len(self.history) == 1
        changed = epochs != self.planned_epochs_
        self.planned_epochs_ = epochs
        self.budget_plan_ = {"budget_s": float(self.budget), "epochs": int(epochs),
                             "seconds_per_epoch": round(epoch_s, 3),
                             "timed_epochs": len(self.history)}
        if changed:
            self._replan_schedules()
        if first or changed:
            self._say(f"budget {float(self.budget):.0f} s: epoch {len(self.history)} took "
                      f"{epoch_s:.1f} s ({elapsed:.0f} s so far), so {epochs} epochs in all; the "
                      "schedules run over exactly those")

    def _replan_schedules(self):
        """Spread the schedules (the callbacks with ``replan``) over ``planned_epochs_``."""
        for _, callback in self.callbacks_:
            if hasattr(callback, "replan"):
                callback.replan(self)

    def _say(self, line):
        held = getattr(self, "_held_lines", None)
        if held is not None:
            held.append(line)
        elif self.verbose:
            print(line, flush=True)

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_fast_trainer", None)
        state.pop("_fit_started", None)
        state.pop("_epoch_ends", None)
        state.pop("_train_rows", None)
        state.pop("_held_lines", None)
        return state

    # skorch's fit() calls partial_fit(), so targets are scaled here, once.
    def partial_fit(self, X, y=None, classes=None, **fit_params):
        self._fit_started = time.perf_counter()   # a time budget counts from here
        if y is not None:
            y = np.asarray(y, dtype=np.float32)
            if self.complete_only and not is_dataset(X):
                rows = self.fit_rows(y)
                if not len(rows):
                    raise ValueError("complete_only: no row has every target labelled")
                X, y = np.asarray(X)[rows], y[rows]
            y = to_unit(y)
        return super().partial_fit(X, y, classes=classes, **fit_params)

    def predict(self, X):
        """Keypoints in pixels, shape (n, n_outputs)."""
        return from_unit(self.predict_proba(X))


def flip_axis_of(model) -> float:
    """The labels' mirror axis a fitted model was trained with: the mean ``flip_axis_`` of
    its nets (they measure it on nearly the same rows; a mean is exact for an average of
    mirrored predictions). ``keypoints.IMAGE_AXIS`` for a model saved before nets kept one,
    or for one without KeypointNets."""
    axes = [getattr(net, "flip_axis_", None) for net in nets(model).values()]
    axes = [float(a) for a in axes if a is not None]
    return float(np.mean(axes)) if axes else float(IMAGE_AXIS)
