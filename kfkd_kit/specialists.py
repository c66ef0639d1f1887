"""Specialists: one net per group of keypoints, together one estimator for all 30 columns.

As in the tutorial, each specialist trains on the rows labelled for its group (so a group
that most rows label, like the eye centres, sees far more data than the eyebrows), can
start from a saved net's weights (all layers but the output), and mirrors its own
left/right pairs when flip augmentation is on. ``Specialists`` is a scikit-learn
regressor taking uint8 images and returning (n, 30) pixels, so ``make submit``,
cross-validation, grid search and ``joblib.load`` treat it like any single net.
"""
from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin

from . import configs
from .keypoints import N_TARGETS, SPECIALIST_GROUPS, columns_of


def _inner_net(model):
    """The KeypointNet inside a saved pipeline (or the net itself)."""
    return model.named_steps["net"] if hasattr(model, "named_steps") else model


def transfer_weights(source_module, target_module) -> list[str]:
    """Copy every parameter of ``source_module`` into ``target_module`` except the output
    layer's (whose width differs per specialist). Returns the names copied."""
    output_ids = {id(p) for p in target_module.output.parameters()}
    skip = {name for name, p in target_module.named_parameters() if id(p) in output_ids}
    source = source_module.state_dict()
    target = target_module.state_dict()
    copied = [name for name in target if name not in skip and name in source
              and source[name].shape == target[name].shape]
    missing = [name for name in target if name not in skip and name not in copied]
    if missing:
        raise ValueError(f"pre-trained net does not match the specialist's layers: {missing[:3]}")
    target_module.load_state_dict({**target, **{n: source[n] for n in copied}})
    return copied


class Specialists(RegressorMixin, BaseEstimator):
    """Six (or ``groups``) nets of configuration ``net``, each predicting its own columns.

    Parameters
    ----------
    net : named configuration for every specialist (default "net6", as the tutorial).
    groups : {name: keypoint names} (default: the tutorial's six, keypoints.SPECIALIST_GROUPS).
    max_epochs : epochs per specialist (default: the configuration's).
    early_stopping : patience in epochs, restoring the best weights (default 200).
    pretrained : path of a saved model (``make train`` output) or a fitted model whose
        layers, all but the output, initialise every specialist.
    lr, momentum : optimizer settings (default: the configuration's), for grid search.
    seed, device, verbose : as for ``configs.build``.
    """

    def __init__(self, net="net6", groups=None, max_epochs=None, early_stopping=200,
                 pretrained=None, lr=None, momentum=None, seed=0, device=None, verbose=0):
        self.net = net
        self.groups = groups
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.pretrained = pretrained
        self.lr = lr
        self.momentum = momentum
        self.seed = seed
        self.device = device
        self.verbose = verbose

    def _groups(self):
        return dict(SPECIALIST_GROUPS if self.groups is None else self.groups)

    def _base_module(self):
        if self.pretrained is None:
            return None
        model = self.pretrained
        if isinstance(model, (str, Path)):
            model = joblib.load(model)
        return _inner_net(model).module_

    def fit(self, X, y):
        X = np.asarray(X)
        y = np.asarray(y, dtype=np.float32)
        if y.shape[1:] != (N_TARGETS,):
            raise ValueError(f"Specialists needs all {N_TARGETS} target columns, got shape {y.shape}")
        base = self._base_module()
        self.columns_ = {}
        self.models_ = {}
        self.rows_ = {}
        for i, (name, keypoints) in enumerate(self._groups().items()):
            columns = columns_of(keypoints)
            rows = np.flatnonzero(np.isfinite(y[:, columns]).all(axis=1))
            if len(rows) < 2:
                raise ValueError(f"specialist {name!r}: only {len(rows)} rows label {keypoints}")
            model = configs.build(
                self.net, max_epochs=self.max_epochs, device=self.device, seed=self.seed + i,
                verbose=self.verbose, early_stopping=self.early_stopping, lr=self.lr,
                momentum=self.momentum, target_columns=columns, n_outputs=len(columns))
            if self.verbose:
                print(f"specialist {i + 1}/{len(self._groups())} {name}: {len(rows)} rows, "
                      f"columns {len(columns)}")
            if base is None:
                model.fit(X[rows], y[np.ix_(rows, columns)])
            else:
                # initialise, copy the pre-trained layers in, then train without re-init
                net = model.named_steps["net"]
                net.initialize()
                with torch.no_grad():
                    transfer_weights(base, net.module_)
                model.named_steps["pixels"].fit(X[rows])
                net.partial_fit(model.named_steps["pixels"].transform(X[rows]),
                                y[np.ix_(rows, columns)])
            self.columns_[name] = columns
            self.models_[name] = model
            self.rows_[name] = rows
        self.n_features_in_ = X.shape[1]
        return self

    @property
    def histories_(self):
        """{specialist name: its skorch training history}."""
        return {name: model.named_steps["net"].history for name, model in self.models_.items()}

    def predict(self, X):
        """(n, 30) pixels; a column no group covers is NaN."""
        out = np.full((len(X), N_TARGETS), np.nan, dtype=np.float32)
        for name, model in self.models_.items():
            out[:, self.columns_[name]] = model.predict(X)
        return out
