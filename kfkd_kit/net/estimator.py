"""The estimator: a skorch NeuralNetRegressor that takes and returns keypoints in pixels.

``KeypointNet`` adds to skorch's regressor only what this competition needs:
- targets go in and come out in pixels; inside, the net sees (y - 48) / 48 (keypoints.py);
- NaN targets are allowed (the default loss ignores them);
- X and y are put on the training device once per fit and batches are drawn there
  (batches.ResidentBatches);
- a ``seed`` makes a fit reproducible (weights, validation split, batch order, flips);
- which rows it trains on is its own parameter (``complete_only``), so train, cv, grid and
  zoo hand every net the same rows and score it the same way;
- fp32 or bf16 under autocast (precision.py);
- on CUDA, opted in with ``fast_path`` (configs does for every named net), the training
  step is captured once in a CUDA graph and replayed (fastpath.py).

A time budget and the labels' mirror axis are its default callbacks (budget.TimeBudget,
mirror_axis.MirrorAxis), beside skorch's own and the epoch table.
"""
from __future__ import annotations

import numpy as np
import torch
from skorch import NeuralNetRegressor
from skorch.dataset import Dataset
from skorch.utils import is_dataset

from . import fastpath
from ..utils import malloc, precision as precisions
from skorch.callbacks import PrintLog

from .batches import ResidentBatches
from .budget import TimeBudget, epoch_bound
from .callbacks import EpochTable, planned_epochs
from .deferred import run_deferred_epoch
from ..keypoints import (DEFAULT_PIXEL_ORIGIN, LEGACY_PIXEL_ORIGIN, check_pixel_origin, from_unit,
                         image_axis, to_unit)
from .mirror_axis import MirrorAxis
from .losses import MaskedMSELoss
from .metrics import PixelRMSEScore
from ..data.splits import GroupedValidSplit
from .nested import nets
from .nets import SoftArgmax


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class KeypointNet(PixelRMSEScore, NeuralNetRegressor):
    """skorch regressor for keypoints in pixels; see the module docstring.

    Parameters
    ----------
    module, criterion, ... :
        skorch's ``NeuralNetRegressor`` parameters; ``criterion`` defaults to
        ``losses.MaskedMSELoss`` and both iterators to ``batches.ResidentBatches``.
    seed : int, default 0
        Seeds torch's generators at every (re)initialisation, and the validation split, so
        the same seed on the same CPU gives the same model.
    valid_fraction : float, default 0.2
        The share of the training rows held out for the epoch table's valid loss (0: none).
    train_split : "seeded", None or callable, default "seeded"
        "seeded": ``splits.GroupedValidSplit(valid_fraction, random_state=split seed)``
        (identical images on one side), made when the net is fitted; anything else is
        skorch's own.
    complete_only : bool, default False
        Train on the rows with every target labelled only (the tutorial's dropna), else on
        all rows with the masked loss.
    fast_path : False, "auto", True or "eager", default False
        False: skorch's plain path; "auto": CUDA graphs on CUDA where they apply (what
        configs' nets use); True: graphs or an error saying why not; "eager": the fast step
        without capture, any device. The graphs serve fastpath.SERVES (see fastpath.py).
    precision : "fp32", "bf16" or "auto", default "fp32"
        bf16: training and prediction under autocast; "auto": bf16 where the device
        computes it natively (precision.py).
    flip_axis : float or "auto", default "auto"
        The labels' mirror axis in pixels (x -> 2 axis - x) for flip augmentation and flip
        TTA, or "auto" to measure it from the rows the net trains on
        (mirror_axis.MirrorAxis).
    budget : float or None, default None
        Seconds that a fit may take: the net times its first epochs and then fixes how many
        it runs so that the fit ends within the budget, its schedules spread over exactly
        those; ``max_epochs`` is then only the first guess (budget.TimeBudget).
    split_seed : int or None, default None
        The seed of the validation split, None for ``seed``; the nets of an
        ensemble.SeedEnsemble differ in ``seed`` and share one split.
    pixel_origin : float, default 0.5 (``keypoints.DEFAULT_PIXEL_ORIGIN``)
        The labels' x (and y) of the top-left pixel's centre: 0.5 continuous coordinates, 1
        one-based and 0 zero-based pixel centres (keypoints.py). The soft-argmax grid, the
        augmentation's centre and frame, and the image's mirror axis are put there, and
        predict maps keypoints between crops and photos with it. A net saved before the
        parameter existed reads 1 (``LEGACY_PIXEL_ORIGIN``), what it was trained under.

    Attributes
    ----------
    precision_ : str
        What a fit resolved ``precision`` to.
    planned_epochs_ : int
        The epochs the fit runs: ``max_epochs``, a budget's choice or a resumed run's plan.
    budget_plan_ : dict
        With a budget: what was measured and chosen (seconds per epoch, epochs, re-plans).
    flip_axis_ : float
        The mirror axis flip TTA uses; ``flip_axis_images_`` is the one measured from the
        images (what augmentation used), ``flip_axis_fit_rmse_px_`` the net's RMSE on its
        training rows when the axis was refined from its predictions.
    resumed_epochs_ : int
        Epochs loaded from a checkpoint when the fit began (runs.Resume; 0 for none).

    ``score`` is the negative RMSE in pixels over labelled values (metrics.PixelRMSEScore).
    """

    split_seed = None   # models saved before the parameter existed
    pixel_origin = LEGACY_PIXEL_ORIGIN   # likewise: what they were trained under
    _end_fit = False    # see end_fit_after_this_epoch

    def __init__(self, module, *args, criterion=MaskedMSELoss, seed=0, valid_fraction=0.2,
                 complete_only=False, iterator_train=ResidentBatches,
                 iterator_valid=ResidentBatches, train_split="seeded", fast_path=False,
                 precision="fp32", flip_axis="auto", budget=None, split_seed=None,
                 pixel_origin=DEFAULT_PIXEL_ORIGIN, **kwargs):
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
        self.pixel_origin = pixel_origin

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

    # -- callbacks: skorch's, the epoch table, the budget and the mirror axis ---------
    def get_default_callbacks(self):
        return [("time_budget", TimeBudget()),
                *[(name, EpochTable() if name == "print_log" else cb)
                  for name, cb in super().get_default_callbacks()],
                ("mirror_axis", MirrorAxis())]

    def initialize_callbacks(self):
        super().initialize_callbacks()
        self.callbacks_ = _running_order(self.callbacks_)
        return self

    def initialize(self):
        torch.manual_seed(self.seed)
        self.precision_ = precisions.resolve(self.precision, self.device)
        super().initialize()
        for name in _FITTED_BY_CALLBACKS:
            self.__dict__.pop(name, None)     # a new fit measures and plans again
        return self

    def initialize_module(self):
        check_pixel_origin(self.pixel_origin)
        super().initialize_module()
        for layer in self.module_.modules():     # a soft-argmax head's grid, in the labels'
            if isinstance(layer, SoftArgmax):     # coordinates
                layer.set_origin(self.pixel_origin)
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self._end_fit = False

    def end_fit_after_this_epoch(self):
        """Called by a callback's ``on_epoch_end`` (the time budget's): the fit ends once
        every callback has seen the end of this epoch, before another begins. (skorch's
        own stop, KeyboardInterrupt from ``on_epoch_end``, would keep the epoch's end from
        the callbacks after it: its checkpoint, its row of the table.)"""
        self._end_fit = True

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        if self._end_fit:
            raise KeyboardInterrupt   # how skorch ends a fit early; partial_fit catches it
        super().on_epoch_begin(net, dataset_train=dataset_train, dataset_valid=dataset_valid,
                               **kwargs)

    def get_iterator(self, dataset, training=False):
        iterator = super().get_iterator(dataset, training=training)
        axis = getattr(self, "flip_axis_", None)   # measured when training began (MirrorAxis)
        if training and isinstance(iterator, ResidentBatches):
            iterator.pixel_origin = self.pixel_origin  # the centre and frame of affine moves
            if axis is not None:
                iterator.flip_axis = axis
        return iterator

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
                return run_deferred_epoch(self, iterator, training, prefix, step_fn,
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
        if epochs is None and getattr(self, "resumed_epochs_", 0):
            # resumed from a checkpoint (runs.Resume): only the epochs that are left
            epochs = max(planned_epochs(self) - len(self.history), 0)
        if epochs is None and self.budget is not None:
            epochs = epoch_bound(self.budget)   # TimeBudget ends the fit at its plan
        # On CPU the fast path is glibc keeping freed memory for reuse (see malloc.py).
        on_cpu = torch.device(self.device or "cpu").type == "cpu"
        try:
            with malloc.reuse_freed_memory(on_cpu and self.fast_path is not False):
                return super().fit_loop(X, y, epochs=epochs, **fit_params)
        finally:
            self._drop_fast_trainer()  # graphs live for one fit and are never pickled

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_fast_trainer", None)
        state.pop("_end_fit", None)
        return state

    def __setstate__(self, state):
        # a net saved before the pixel origin was a parameter was trained under the old one;
        # kept as a parameter (skorch's get_params reads __dict__), so clone keeps it too
        state.setdefault("pixel_origin", LEGACY_PIXEL_ORIGIN)
        super().__setstate__(state)
        # nets saved before the budget and the mirror axis were callbacks train on with them
        if "callbacks_" in self.__dict__:
            names = {name for name, _ in self.callbacks_}
            missing = [(name, cb.initialize()) for name, cb in self.get_default_callbacks()
                       if isinstance(cb, _OWN_CALLBACKS) and name not in names]
            self.callbacks_ = _running_order(self.callbacks_ + missing)

    # skorch's fit() calls partial_fit(), so targets are scaled here, once.
    def partial_fit(self, X, y=None, classes=None, **fit_params):
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


_OWN_CALLBACKS = (TimeBudget, MirrorAxis)
_FITTED_BY_CALLBACKS = [name for cls in _OWN_CALLBACKS for name in cls.fitted_attributes]


def _running_order(callbacks):
    """The (name, callback) pairs in the order they run: the budget first (it plans an
    epoch before any other callback sees its end, so that the epoch's checkpoint holds the
    plan), then skorch's defaults and the user's in their order, then the mirror axis (it is
    refined from the fitted weights: after the callbacks that change them when training
    ends, the weight average and early stopping's best) and the table (skorch's PrintLog)
    last."""
    def rank(item):
        callback = item[1]
        return (0 if isinstance(callback, TimeBudget) else 3 if isinstance(callback, PrintLog)
                else 2 if isinstance(callback, MirrorAxis) else 1)
    return sorted(callbacks, key=rank)


def flip_axis_of(model) -> float:
    """The labels' mirror axis a fitted model was trained with: the mean ``flip_axis_`` of
    its nets (they measure it on nearly the same rows; a mean is exact for an average of
    mirrored predictions). The image's axis (``keypoints.image_axis`` of the model's pixel
    origin) for a model saved before nets kept one, or for one without KeypointNets."""
    axes = [getattr(net, "flip_axis_", None) for net in nets(model).values()]
    axes = [float(a) for a in axes if a is not None]
    return float(np.mean(axes)) if axes else image_axis(pixel_origin_of(model))


def pixel_origin_of(model, fitted=True) -> float:
    """The pixel origin of the labels ``model``'s nets were trained on (``pixel_origin``;
    ``keypoints.LEGACY_PIXEL_ORIGIN`` for nets saved before it was a setting, and for a model
    without KeypointNets). ``fitted=False`` reads an unfitted model's template net. A
    one-line ValueError when its nets disagree: their keypoints could not be averaged."""
    origins = {float(getattr(net, "pixel_origin", LEGACY_PIXEL_ORIGIN))
               for net in nets(model, fitted=fitted).values()}
    if len(origins) > 1:
        raise ValueError(f"the model's nets were trained under different pixel origins "
                         f"{sorted(origins)}: their keypoints cannot be combined")
    return origins.pop() if origins else LEGACY_PIXEL_ORIGIN
