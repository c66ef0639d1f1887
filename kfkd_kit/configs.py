"""Named configurations ("net1" ... "net8"): the tutorial's settings as estimator parameters.

net1-net7 are the tutorial's; net8 is this toolkit's own recipe for a CPU (batch-norm CNN,
AdamW with a one-cycle learning rate, affine + flip + intensity augmentation, an average
of the weights, bf16 where the CPU has it); docs/RESULTS.md shows what each part buys.

``build(name, ...)`` returns an unfitted Pipeline. Each configuration also says whether it
trains on complete rows only (the tutorial's dropna) or on all rows with the masked loss.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from skorch.callbacks import EarlyStopping

from .callbacks import LinearSchedule, OneCycle, TrainValidRatio, WeightAverage
from .estimator import KeypointNet, default_device
from .nets import BNCNN, CNN, MLP
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


_CNN = dict(filters=(32, 64, 128), kernels=(3, 2, 2), dense=(500, 500))
_DROPOUT = (0.1, 0.2, 0.3, 0.5)
_SCHEDULES = dict(lr_schedule=(0.03, 0.0001), momentum_schedule=(0.9, 0.999))
NET8_AUGMENT = dict(rotate=12.0, scale=0.08, shift=3.0, brightness=0.1, contrast=0.15)
NET8_EPOCHS = 80  # under 9 minutes on 3116 rows on a 2-core AVX512-BF16 CPU

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
    NetConfig("net8", "batch-norm CNN (7 conv 3x3, 16-128 wide, 512-unit head), AdamW + "
              "one-cycle lr, flip + affine + intensity augmentation, weight average",
              BNCNN, dict(width=16, dropout=0.1, hidden=512), max_epochs=NET8_EPOCHS, lr=6e-3,
              optimizer="adamw", weight_decay=0.05, one_cycle=True, flip=True,
              augment=NET8_AUGMENT, weight_average=0.998, valid_fraction=0.1),
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
          early_stopping=None, valid_fraction=None, lr=None, momentum=None,
          target_columns=None, n_outputs=None, base=None, precision="auto"):
    """An unfitted Pipeline for the named configuration.

    ``early_stopping``: patience in epochs (restores the best weights), or None for off.
    ``valid_fraction``: the net's internal validation split (0 turns it off: then no
    valid loss, no early stopping; None: the configuration's, 20% for the tutorial's nets).
    ``device`` defaults to CUDA when present. ``precision``: "auto" (bf16 where the
    device computes it natively, see precision.py), "fp32", "tf32" or "bf16".
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
    if valid_fraction is None:
        valid_fraction = config.valid_fraction
    lr = config.lr if lr is None else lr
    callbacks = [("ratio", TrainValidRatio())]
    if config.one_cycle:  # named like the linear schedules, so a grid over lr refuses it
        callbacks.append(("lr_schedule", OneCycle(max_lr=lr)))
    if config.weight_average:
        callbacks.append(("weight_average", WeightAverage(config.weight_average)))
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
    if config.module in (CNN, BNCNN) and device == "cpu":
        module_params.setdefault("channels_last", True)
    if config.optimizer == "adamw":
        if momentum is not None:
            raise ValueError(f"{name} uses AdamW with a one-cycle schedule: momentum does not apply")
        optimizer = dict(optimizer=torch.optim.AdamW, optimizer__weight_decay=config.weight_decay)
    else:
        optimizer = dict(optimizer=torch.optim.SGD, optimizer__nesterov=True,
                         optimizer__momentum=config.momentum if momentum is None else momentum)
        if config.weight_decay:
            optimizer["optimizer__weight_decay"] = config.weight_decay
    net = KeypointNet(
        config.module,
        **{f"module__{k}": v for k, v in module_params.items()},
        **optimizer,
        lr=lr,
        batch_size=config.batch_size,
        max_epochs=config.max_epochs if max_epochs is None else max_epochs,
        train_split=_valid_split(valid_fraction, seed),
        iterator_train__shuffle=True,
        iterator_train__flip=config.flip,
        **{f"iterator_train__{k}": v for k, v in config.augment.items()},
        iterator_train__target_columns=target_columns,
        callbacks=callbacks,
        device=device,
        seed=seed,
        precision=precision,
        verbose=verbose,
    )
    return make_pipeline(net)


def _valid_split(fraction, seed):
    from skorch.dataset import ValidSplit
    return ValidSplit(fraction, random_state=seed) if fraction else None
