"""Named configurations ("net1" ... "net7"): the tutorial's settings as estimator parameters.

``build(name, ...)`` returns an unfitted Pipeline. Each configuration also says whether it
trains on complete rows only (the tutorial's dropna) or on all rows with the masked loss.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from skorch.callbacks import EarlyStopping

from .callbacks import LinearSchedule, TrainValidRatio
from .estimator import KeypointNet, default_device
from .nets import CNN, MLP
from .pipeline import make_pipeline


@dataclass(frozen=True)
class NetConfig:
    name: str
    description: str
    module: type
    module_params: dict = field(default_factory=dict)
    max_epochs: int = 400
    lr: float = 0.01
    momentum: float = 0.9
    # (start, stop) of linear per-epoch schedules, or None for constant values.
    lr_schedule: tuple | None = None
    momentum_schedule: tuple | None = None
    flip: bool = False
    complete_only: bool = False
    batch_size: int = 128
    # For "specialists": the configuration every specialist uses; build() then returns a
    # specialists.Specialists estimator instead of a single net's Pipeline.
    specialist_net: str | None = None


_CNN = dict(filters=(32, 64, 128), kernels=(3, 2, 2), dense=(500, 500))
_DROPOUT = (0.1, 0.2, 0.3, 0.5)
_SCHEDULES = dict(lr_schedule=(0.03, 0.0001), momentum_schedule=(0.9, 0.999))

CONFIGS = {c.name: c for c in [
    NetConfig("net1", "MLP 9216-100-30, complete rows only (the tutorial's first net)",
              MLP, dict(n_hidden=100), max_epochs=400, complete_only=True),
    NetConfig("net2", "CNN 32/64/128 conv + 500/500 dense, all rows, masked loss",
              CNN, _CNN, max_epochs=1000),
    NetConfig("net3", "net2 + flip augmentation", CNN, _CNN, max_epochs=1000, flip=True),
    NetConfig("net4", "net2 + linear lr 0.03->0.0001, momentum 0.9->0.999",
              CNN, _CNN, max_epochs=1000, **_SCHEDULES),
    NetConfig("net5", "net4 + flip augmentation", CNN, _CNN, max_epochs=1000, flip=True,
              **_SCHEDULES),
    NetConfig("net6", "net5 + dropout 0.1/0.2/0.3/0.5, 3000 epochs",
              CNN, dict(_CNN, dropout=_DROPOUT), max_epochs=3000, flip=True, **_SCHEDULES),
    NetConfig("net7", "net6 with 1000-unit dense layers, 10000 epochs",
              CNN, dict(_CNN, dense=(1000, 1000), dropout=_DROPOUT), max_epochs=10000,
              flip=True, **_SCHEDULES),
    NetConfig("specialists", "six net6 specialists (eye centres, nose, mouth, bottom lip, "
              "eye corners, eyebrows), early stopping 200; BASE= pre-trains them",
              CNN, dict(_CNN, dropout=_DROPOUT), max_epochs=3000, flip=True,
              specialist_net="net6", **_SCHEDULES),
]}
SPECIALIST_PATIENCE = 200


def get_config(name: str) -> NetConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown net {name!r}; choose one of {', '.join(CONFIGS)}") from None


def build(name="net1", max_epochs=None, device=None, seed=0, verbose=1,
          early_stopping=None, valid_fraction=0.2, lr=None, momentum=None,
          target_columns=None, n_outputs=None, base=None):
    """An unfitted Pipeline for the named configuration.

    ``early_stopping``: patience in epochs (restores the best weights), or None for off.
    ``valid_fraction``: the net's internal validation split (0 turns it off: then no
    valid loss, no early stopping). ``device`` defaults to CUDA when present.
    ``base``: for "specialists" only, a saved model that pre-trains every specialist.
    """
    config = get_config(name)
    if config.specialist_net:
        from .specialists import Specialists
        return Specialists(net=config.specialist_net, max_epochs=max_epochs,
                           early_stopping=early_stopping or SPECIALIST_PATIENCE,
                           pretrained=base, lr=lr, momentum=momentum, seed=seed,
                           device=device, verbose=verbose)
    if base is not None:
        raise ValueError(f"a pre-training base model applies to specialists, not {name}")
    device = device or default_device()
    callbacks = [("ratio", TrainValidRatio())]
    if config.lr_schedule:
        callbacks.append(("lr_schedule", LinearSchedule("lr", *config.lr_schedule)))
    if config.momentum_schedule:
        callbacks.append(("momentum_schedule", LinearSchedule("momentum", *config.momentum_schedule)))
    if early_stopping:
        if not valid_fraction:
            raise ValueError("early stopping needs a validation split (valid_fraction > 0)")
        callbacks.append(("early_stopping", EarlyStopping(
            monitor="valid_loss", patience=early_stopping, load_best=True)))
    module_params = dict(config.module_params)
    if n_outputs is not None:
        module_params["n_outputs"] = n_outputs
    if config.module is CNN and device == "cpu":
        module_params.setdefault("channels_last", True)
    net = KeypointNet(
        config.module,
        **{f"module__{k}": v for k, v in module_params.items()},
        optimizer=torch.optim.SGD,
        lr=config.lr if lr is None else lr,
        optimizer__momentum=config.momentum if momentum is None else momentum,
        optimizer__nesterov=True,
        batch_size=config.batch_size,
        max_epochs=config.max_epochs if max_epochs is None else max_epochs,
        train_split=_valid_split(valid_fraction, seed),
        iterator_train__shuffle=True,
        iterator_train__flip=config.flip,
        iterator_train__target_columns=target_columns,
        callbacks=callbacks,
        device=device,
        seed=seed,
        verbose=verbose,
    )
    return make_pipeline(net)


def _valid_split(fraction, seed):
    from skorch.dataset import ValidSplit
    return ValidSplit(fraction, random_state=seed) if fraction else None
