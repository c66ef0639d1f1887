"""Named configurations ("net1" ... "net8"): the tutorial's settings as estimator parameters.

net1-net7 are the tutorial's; net8 is this toolkit's own recipe for a CPU (batch-norm CNN,
AdamW with a one-cycle learning rate, affine + flip + intensity augmentation, an average
of the weights, bf16 where the CPU has it); docs/RESULTS.md shows what each part buys.

``build(name, params=..., head=..., **overrides)`` returns the unfitted estimator in one
pass, top to bottom: the net's parameters are resolved first (the configuration, then a
parameters file, then the overrides by their one name: epochs, seed, lr, ...), then the
callbacks, the net, its Pipeline and (for specialists) ``Specialists`` are each built once
with their final parameters. ``configure`` applies the same overrides to an estimator built
already, with set_params; ``settings`` reads them back. Which of several nets a time budget
buys is recipes.py's to say. Whether a net trains on complete rows only (the tutorial's dropna) is
the net's own ``complete_only`` parameter.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .net.callbacks import (EarlyStopping, LinearSchedule, OneCycle, PretrainedLayers,
                            TrainValidRatio, WeightAverage)
from .net.estimator import KeypointNet, default_device
from .net.losses import MaskedL1Loss, MaskedMSELoss
from .net.nested import inner_net, net_prefix
from .net.nets import BNCNN, CNN, MLP
from .net.pipeline import make_pipeline
from .meta.specialists import Specialists
from .net.settings import (OVERRIDES, apply_params, check_params, configure, head_params,
                           load_params, net_head_params, override_params, set_head, settings)

__all__ = ["NetConfig", "CONFIGS", "get_config", "trained_config", "build", "NET8_EPOCHS",
           "NET8_AUGMENT", "SPECIALIST_PATIENCE",
           # a net's settings by name (net/settings.py), and nested.py's two finders
           # re-exported (nested.py alone knows how models nest), so a script needs only configs
           "OVERRIDES", "configure", "settings", "load_params", "apply_params", "set_head",
           "head_params", "inner_net", "net_prefix"]


@dataclass(frozen=True)
class NetConfig:
    name: str
    description: str
    # the torch module; None for a configuration of specialists (``specialist_net``)
    module: type | None = None
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
    # specialists.Specialists estimator of that net (early stopping SPECIALIST_PATIENCE)
    # instead of a single net's Pipeline; its other fields are not read (leave them be).
    specialist_net: str | None = None
    # "sgd" (Nesterov momentum, the tutorial's) or "adamw" (with weight_decay).
    optimizer: str = "sgd"
    weight_decay: float = 0.0
    # One-cycle learning rate stepped every batch, peaking at ``lr`` (callbacks.OneCycle).
    one_cycle: bool = False
    # Training-batch augmentation beyond the flip: ResidentBatches' rotate, scale, shift,
    # brightness, contrast.
    augment: dict = field(default_factory=dict)
    # Decay of an exponential moving average of the weights (callbacks.WeightAverage).
    weight_average: float | None = None
    valid_fraction: float = 0.2
    # The loss over the labelled values (missing ones ignored): squared or absolute error.
    criterion: type = MaskedMSELoss

    def __post_init__(self):
        if (self.module is None) == (self.specialist_net is None):
            raise ValueError(f"configuration {self.name!r}: give a module or a specialist_net")


_CNN = dict(filters=(32, 64, 128), kernels=(3, 2, 2), dense=(500, 500))
_DROPOUT = (0.1, 0.2, 0.3, 0.5)
_SCHEDULES = dict(lr_schedule=(0.03, 0.0001), momentum_schedule=(0.9, 0.999))
NET8_AUGMENT = dict(rotate=12.0, scale=0.08, shift=3.0, brightness=0.1, contrast=0.15)
NET8_EPOCHS = 80  # without BUDGET=; about 5 minutes on 2770 rows on a 2-core AMX CPU

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
    NetConfig("net8", "batch-norm CNN (6 conv 3x3, 16-128 wide, 512-unit head), AdamW + "
              "one-cycle lr, flip + affine + intensity augmentation, L1 loss, weight average",
              BNCNN, dict(width=16, dropout=0.1, hidden=512), max_epochs=NET8_EPOCHS, lr=6e-3,
              optimizer="adamw", weight_decay=0.05, one_cycle=True, flip=True,
              augment=NET8_AUGMENT, weight_average=0.998, valid_fraction=0.1,
              # docs/RESULTS.md, "The absolute error (L1) for net8": the 10-minute pair
              # scored 1.196 +- 0.004 px held out, against 1.226 with the squared error
              criterion=MaskedL1Loss),
    NetConfig("specialists", "six net6 specialists (eye centres, nose, mouth, bottom lip, "
              "eye corners, eyebrows), early stopping 200; BASE= pre-trains them",
              specialist_net="net6"),
]}
SPECIALIST_PATIENCE = 200


def get_config(name: str) -> NetConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown net {name!r}; choose one of {', '.join(CONFIGS)}") from None


def trained_config(name: str) -> NetConfig:
    """The configuration of the nets that ``name`` trains: its own, or for specialists
    their ``specialist_net``'s (its epochs, schedules, module)."""
    config = get_config(name)
    return get_config(config.specialist_net) if config.specialist_net else config


def build(name="net1", params=None, head=None, source="params", **overrides):
    """The named configuration as an unfitted estimator, built in one pass with its final
    parameters: a Pipeline (pixels -> net), or for "specialists" a ``Specialists`` of net6
    Pipelines.

    On top of the configuration, in this order (a later one wins): ``params``, the net's
    parameters named relative to it ({"module__width": 24, "lr": 0.004}, what
    ``load_params`` reads; an unknown one is a one-line ValueError naming ``source``);
    ``overrides`` by their one name (``epochs=3, seed=1, device="cpu", ...``, see
    ``configure``; None leaves a setting as it is); ``head``, net8's "dense" or
    "softargmax" (``head_params``)."""
    config = get_config(name)
    if config.specialist_net:
        # the specialists' own early stopping first: --params and the overrides on top
        return Specialists(_pipeline(get_config(config.specialist_net),
                                     {"patience": SPECIALIST_PATIENCE}, params, source,
                                     overrides, head))
    return _pipeline(config, {}, params, source, overrides, head)


def _pipeline(config, defaults, params, source, overrides, head):
    """The net's parameters resolved first, then the net and its Pipeline built once."""
    device = default_device()
    kwargs, callbacks = _net_params(config, device)
    for layer in (override_params(kwargs, callbacks, defaults),
                  check_params(kwargs, callbacks, params or {}, source),
                  override_params(kwargs, callbacks, overrides),
                  {} if head is None else net_head_params(kwargs.get("module"), head)):
        for key, value in layer.items():
            group, _, rest = key.partition("__")
            if group == "callbacks" and rest:
                callback, _, param = rest.partition("__")
                callbacks[callback][1][param] = value
            else:
                kwargs[key] = value
    built = [(label, cls(**args)) for label, (cls, args) in callbacks.items()]
    return make_pipeline(KeypointNet(**kwargs, callbacks=built))


def _net_params(config: NetConfig, device) -> tuple[dict, dict]:
    """The KeypointNet's parameters (but its callbacks) and its callbacks as {name: (class,
    parameters)}, from the configuration alone."""
    callbacks = {"ratio": (TrainValidRatio, {})}
    if config.one_cycle:  # named like the linear schedules, so a grid over lr refuses it
        callbacks["lr_schedule"] = (OneCycle, {"max_lr": config.lr})
    if config.weight_average:
        callbacks["weight_average"] = (WeightAverage, {"decay": config.weight_average})
    if config.lr_schedule:
        start, stop = config.lr_schedule
        callbacks["lr_schedule"] = (LinearSchedule, {"name": "lr", "start": start, "stop": stop})
    if config.momentum_schedule:
        start, stop = config.momentum_schedule
        callbacks["momentum_schedule"] = (LinearSchedule, {"name": "momentum", "start": start,
                                                           "stop": stop})
    callbacks["pretrained"] = (PretrainedLayers, {})
    callbacks["early_stopping"] = (EarlyStopping, {})
    if config.optimizer == "adamw":
        optimizer = dict(optimizer=torch.optim.AdamW, optimizer__weight_decay=config.weight_decay)
    else:
        optimizer = dict(optimizer=torch.optim.SGD, optimizer__nesterov=True,
                         optimizer__momentum=config.momentum)
        if config.weight_decay:
            optimizer["optimizer__weight_decay"] = config.weight_decay
    module_params = dict(config.module_params)
    if config.module in (CNN, BNCNN):
        module_params["channels_last"] = device == "cpu"
    return dict(
        module=config.module,
        **{f"module__{k}": v for k, v in module_params.items()},
        **optimizer,
        criterion=config.criterion,
        lr=config.lr,
        batch_size=config.batch_size,
        max_epochs=config.max_epochs,
        valid_fraction=config.valid_fraction,
        complete_only=config.complete_only,
        iterator_train__shuffle=True,
        iterator_train__flip=config.flip,
        **{f"iterator_train__{k}": v for k, v in config.augment.items()},
        device=device,
        precision="auto",
        # the CUDA-graph step where it applies (net1-net7, the specialists; net8 falls back
        # to skorch's), and on CPU freed memory kept for reuse during a fit: fastpath.py
        fast_path="auto",
    ), callbacks
