"""The estimator: a skorch NeuralNetRegressor that takes and returns keypoints in pixels.

``KeypointNet`` adds to skorch's regressor only what this competition needs:
- targets go in and come out in pixels; inside, the net sees (y - 48) / 48 (keypoints.py);
- NaN targets are allowed (the default loss ignores them);
- X and y are put on the training device once per fit and batches are drawn there
  (batches.ResidentBatches);
- a ``seed`` makes a fit reproducible (weights, validation split, batch order, flips);
- which rows it trains on is its own parameter (``complete_only``), so train, cv, grid and
  zoo hand every net the same rows and score it the same way;
- on CUDA, the training step is captured once in a CUDA graph and replayed (fastpath.py).
"""
from __future__ import annotations

import numpy as np
import torch
from skorch import NeuralNetRegressor
from skorch.dataset import Dataset
from skorch.utils import is_dataset

from . import fastpath, precision as precisions
from .batches import ResidentBatches
from .callbacks import EpochTable
from .keypoints import from_unit, to_unit
from .losses import MaskedMSELoss
from .metrics import PixelRMSEScore
from .splits import GroupedValidSplit


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
    ``fast_path``: "auto" (CUDA graphs on CUDA where they apply, else skorch's plain
    path), True (graphs or an error saying why not), "eager" (the fast step without
    capture, any device) or False; see fastpath.py. ``precision``: "fp32", "tf32",
    "bf16" (training and prediction under autocast) or "auto" (bf16 where the device
    computes it natively, see precision.py); ``precision_`` is what a fit resolved it to.
    ``score`` is the negative RMSE in pixels over labelled values (metrics.PixelRMSEScore).
    """

    def __init__(self, module, *args, criterion=MaskedMSELoss, seed=0, valid_fraction=0.2,
                 complete_only=False, iterator_train=ResidentBatches,
                 iterator_valid=ResidentBatches, train_split="seeded", fast_path="auto",
                 precision="fp32", **kwargs):
        super().__init__(module, *args, criterion=criterion, iterator_train=iterator_train,
                         iterator_valid=iterator_valid, train_split=train_split, **kwargs)
        self.seed = seed
        self.valid_fraction = valid_fraction
        self.complete_only = complete_only
        self.fast_path = fast_path
        self.precision = precision

    # -- which rows: trained on, and held out for validation ---------------------------
    def resolved_train_split(self):
        """The validation split a fit uses (None for none)."""
        if isinstance(self.train_split, str):
            if self.train_split != "seeded":
                raise ValueError(f"train_split must be 'seeded', None or a callable, "
                                 f"got {self.train_split!r}")
            fraction = self.valid_fraction
            return GroupedValidSplit(fraction, random_state=self.seed) if fraction else None
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
        return super().initialize()

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
            raise ValueError(f"fast_path={mode!r} cannot apply: {reason}")
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
        if epochs is None and getattr(self, "resumed_epochs_", 0):
            # resumed from a checkpoint (runs.Resume): only the epochs that are left
            epochs = max(self.max_epochs - len(self.history), 0)
        # On CPU the fast path is glibc keeping freed memory for reuse (see fastpath.py).
        on_cpu = torch.device(self.device or "cpu").type == "cpu"
        try:
            with fastpath.reuse_freed_memory(on_cpu and self.fast_path is not False):
                return super().fit_loop(X, y, epochs=epochs, **fit_params)
        finally:
            self._drop_fast_trainer()  # graphs live for one fit and are never pickled

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_fast_trainer", None)
        return state

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
