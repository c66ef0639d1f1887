"""Named configurations ("net1" ... "net8"): the tutorial's settings as estimator parameters.

net1-net7 are the tutorial's; net8 is this toolkit's own recipe for a CPU (batch-norm CNN,
AdamW with a one-cycle learning rate, affine + flip + intensity augmentation, an average
of the weights, bf16 where the CPU has it); docs/RESULTS.md shows what each part buys.

``build(name, **overrides)`` returns the unfitted estimator; ``configure`` applies overrides
(epochs, seed, lr, ...) to any estimator with set_params, under one name each; ``settings``
reads them back. Whether a net trains on complete rows only (the tutorial's dropna) is
the net's own ``complete_only`` parameter.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .callbacks import (EarlyStopping, LinearSchedule, OneCycle, PretrainedLayers, TrainValidRatio,
                        WeightAverage)
from .estimator import KeypointNet, default_device
from .nested import nets
from .nets import BNCNN, CNN, MLP
from .pipeline import make_pipeline
from .specialists import Specialists


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
              "one-cycle lr, flip + affine + intensity augmentation, weight average",
              BNCNN, dict(width=16, dropout=0.1, hidden=512), max_epochs=NET8_EPOCHS, lr=6e-3,
              optimizer="adamw", weight_decay=0.05, one_cycle=True, flip=True,
              augment=NET8_AUGMENT, weight_average=0.998, valid_fraction=0.1),
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


def build(name="net1", **overrides):
    """The named configuration as an unfitted estimator: a Pipeline (pixels -> net), or
    for "specialists" a ``Specialists`` of net6 Pipelines. ``overrides`` are applied by
    ``configure`` (``epochs=3, seed=1, device="cpu", ...``), with set_params."""
    config = get_config(name)
    if config.specialist_net:
        estimator = Specialists(build(config.specialist_net, patience=SPECIALIST_PATIENCE))
    else:
        estimator = make_pipeline(_net(config))
    return configure(estimator, **overrides)


def _net(config: NetConfig) -> KeypointNet:
    callbacks = [("ratio", TrainValidRatio())]
    if config.one_cycle:  # named like the linear schedules, so a grid over lr refuses it
        callbacks.append(("lr_schedule", OneCycle(max_lr=config.lr)))
    if config.weight_average:
        callbacks.append(("weight_average", WeightAverage(config.weight_average)))
    if config.lr_schedule:
        callbacks.append(("lr_schedule", LinearSchedule("lr", *config.lr_schedule)))
    if config.momentum_schedule:
        callbacks.append(("momentum_schedule", LinearSchedule("momentum", *config.momentum_schedule)))
    callbacks += [("pretrained", PretrainedLayers()), ("early_stopping", EarlyStopping())]
    if config.optimizer == "adamw":
        optimizer = dict(optimizer=torch.optim.AdamW, optimizer__weight_decay=config.weight_decay)
    else:
        optimizer = dict(optimizer=torch.optim.SGD, optimizer__nesterov=True,
                         optimizer__momentum=config.momentum)
        if config.weight_decay:
            optimizer["optimizer__weight_decay"] = config.weight_decay
    device = default_device()
    module_params = dict(config.module_params)
    if config.module in (CNN, BNCNN):
        module_params["channels_last"] = device == "cpu"
    return KeypointNet(
        config.module,
        **{f"module__{k}": v for k, v in module_params.items()},
        **optimizer,
        lr=config.lr,
        batch_size=config.batch_size,
        max_epochs=config.max_epochs,
        valid_fraction=config.valid_fraction,
        complete_only=config.complete_only,
        iterator_train__shuffle=True,
        iterator_train__flip=config.flip,
        **{f"iterator_train__{k}": v for k, v in config.augment.items()},
        callbacks=callbacks,
        device=device,
        precision="auto",
        # the CUDA-graph step where it applies (net1-net7, the specialists; net8 falls back
        # to skorch's), and on CPU freed memory kept for reuse during a fit: fastpath.py
        fast_path="auto",
    )


# -- overrides: one name, one meaning, everywhere --------------------------------------------
OVERRIDES = {
    "epochs": "max_epochs",
    "seed": "seed",
    "lr": "lr",
    "momentum": "optimizer__momentum",
    "patience": "callbacks__early_stopping__patience",
    "device": "device",
    "precision": "precision",
    "valid_fraction": "valid_fraction",
    "complete_only": "complete_only",
    "base": "callbacks__pretrained__source",
    "verbose": "verbose",
    "flip_axis": "flip_axis",
    "budget": "budget",
}


def net_prefix(estimator) -> str:
    """The set_params prefix of the KeypointNet inside ``estimator``: "" for the net,
    "net__" for a Pipeline, "estimator__net__" for Specialists, FlipTTA or FoldEnsemble."""
    if isinstance(estimator, KeypointNet):
        return ""
    if hasattr(estimator, "named_steps"):
        return "net__"
    inner = getattr(estimator, "estimator", None)
    if inner is None:
        raise ValueError(f"no net inside {type(estimator).__name__}")
    return "estimator__" + net_prefix(inner)


def inner_net(estimator) -> KeypointNet:
    """The (first) KeypointNet template inside ``estimator``: the one set_params reaches."""
    found = nets(estimator, fitted=False)
    if not found:
        raise ValueError(f"no net inside {type(estimator).__name__}")
    return next(iter(found.values()))


def head_params(estimator, head: str) -> dict:
    """The set_params that give the BNCNN (net8) inside ``estimator`` the head ``head``
    ("dense" or "softargmax") and that head's layers (``BNCNN.HEAD_LAYERS``); a one-line
    ValueError for another head or another net."""
    if head not in BNCNN.HEADS:
        raise ValueError(f"heads must be among {', '.join(BNCNN.HEADS)}, got {head!r}")
    if not issubclass(inner_net(estimator).module, BNCNN):
        raise ValueError("a choice of heads needs a BNCNN net (net8)")
    prefix = net_prefix(estimator)
    return {prefix + "module__head": head, prefix + "module__layers": BNCNN.HEAD_LAYERS[head]}


def set_head(estimator, head: str):
    """``estimator`` with the head ``head`` (``head_params``)."""
    return estimator.set_params(**head_params(estimator, head))


def configure(estimator, **overrides):
    """Apply overrides by their one name (``OVERRIDES``) with ``set_params``; None leaves
    a setting as it is. Returns ``estimator``.

    ``epochs``, ``seed``, ``lr`` (for net8 the one-cycle peak), ``momentum`` (SGD nets),
    ``patience`` (early stopping on the valid loss, restoring the best weights; 0 turns
    it off), ``device`` (cpu/cuda), ``precision``, ``valid_fraction``, ``complete_only``,
    ``base`` (a model whose layers, all but the output, start the net), ``verbose``,
    ``flip_axis`` (the labels' mirror axis in pixels, or "auto": measured when fitting),
    ``budget`` (seconds per fit: the net times its first epochs and runs as many as fit).
    """
    unknown = set(overrides) - set(OVERRIDES)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(OVERRIDES)}")
    prefix, net = net_prefix(estimator), inner_net(estimator)
    params = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "patience":
            value = value or None
        if key == "momentum" and net.optimizer is not torch.optim.SGD:
            raise ValueError(f"momentum applies to SGD; this net uses {net.optimizer.__name__}")
        params[prefix + OVERRIDES[key]] = value
        if key == "lr" and isinstance(dict(net.callbacks).get("lr_schedule"), OneCycle):
            params[prefix + "callbacks__lr_schedule__max_lr"] = value
        if key == "device" and net.module in (CNN, BNCNN):
            params[prefix + "module__channels_last"] = str(value) == "cpu"
    return estimator.set_params(**params)


def settings(estimator) -> dict:
    """What a (fitted or not) estimator will do, read back from its parameters: the one
    record that train, cv, grid and zoo write into their JSON."""
    net = inner_net(estimator)
    callbacks = dict(net.callbacks)
    schedules = {name: (type(cb).__name__ if not isinstance(cb, LinearSchedule)
                        else [cb.start, cb.stop])
                 for name, cb in callbacks.items() if name.endswith("_schedule")}
    params = net.get_params()
    base = callbacks.get("pretrained")
    return {
        "seed": net.seed, "device": net.device, "precision": net.precision,
        "flip_axis": net.flip_axis, "budget_s": net.budget,
        "optimizer": net.optimizer.__name__, "lr": net.lr,
        "momentum": params.get("optimizer__momentum"),
        "weight_decay": params.get("optimizer__weight_decay", 0.0),
        "batch_size": net.batch_size, "max_epochs": net.max_epochs,
        "valid_fraction": net.valid_fraction, "complete_only": net.complete_only,
        "early_stopping": callbacks["early_stopping"].patience if "early_stopping" in callbacks else None,
        "flip": params.get("iterator_train__flip", False),
        "augment": {k.split("__", 1)[1]: v for k, v in params.items()
                    if k.split("__", 1)[-1] in ("rotate", "scale", "shift", "brightness", "contrast")
                    and k.startswith("iterator_train__")},
        "weight_average": getattr(callbacks.get("weight_average"), "decay", None),
        "schedules": schedules,
        "base": None if base is None or base.source is None else str(base.source),
        # the module's own parameters (net8's width, dropout, ...) and a one-cycle's peak lr,
        # so a run or JSON with other ones (PARAMS=, kfkd tune) is told apart
        "module": {k.split("__", 1)[1]: v for k, v in params.items()
                   if k.startswith("module__") and k != "module__channels_last"},
        "max_lr": getattr(callbacks.get("lr_schedule"), "max_lr", None),
    }


# -- parameters from a file: PARAMS= / --params, and what `kfkd tune` writes ------------------


def load_params(path, net=None) -> dict:
    """The KeypointNet parameters in the JSON file ``path``: an object of parameters named
    relative to the net ("module__width", "iterator_train__rotate", "lr",
    "callbacks__lr_schedule__max_lr", ...), or an object whose "params" is one (what
    ``kfkd tune`` writes as its best parameters, beside its "net", score and study).
    ``net``: refuse a file made for another net. Errors are one line naming the file."""
    import json
    from pathlib import Path
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such parameters file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the parameters file ({exc})") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})") from None
    if isinstance(payload, dict) and isinstance(payload.get("params"), dict):
        params, made_for = payload["params"], payload.get("net")
    else:
        params, made_for = payload, None
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise ValueError(f"{path}: expected a JSON object of parameters such as "
                         '{"module__width": 24, "lr": 0.004}')
    if net is not None and made_for is not None and made_for != net:
        raise ValueError(f"{path}: parameters for {made_for}, not {net}")
    return dict(params)


def apply_params(estimator, params: dict, source="params"):
    """Set KeypointNet parameters, named relative to the net ("module__width", "lr",
    "callbacks__lr_schedule__max_lr", ...), on any estimator around one (a Pipeline,
    Specialists, FlipTTA, ...) with set_params through ``net_prefix``. An unknown
    parameter is a one-line ValueError naming ``source``. Returns ``estimator``."""
    net = inner_net(estimator)
    unknown = [key for key in params if not _known_param(net, key)]
    if unknown:
        raise ValueError(f"{source}: unknown parameter(s) {', '.join(map(repr, unknown))} for "
                         f"{net.module.__name__ if isinstance(net.module, type) else 'this'} net")
    prefix = net_prefix(estimator)
    return estimator.set_params(**{prefix + key: value for key, value in params.items()})


def _known_param(net, key) -> bool:
    """Whether ``net.set_params(**{key: ...})`` sets something that exists (skorch itself
    takes any "module__..." and fails only when the net is built)."""
    import inspect
    if key in net.get_params(deep=False):
        return True
    head, _, rest = key.partition("__")
    if not rest:
        return False
    if head == "callbacks":
        name, _, param = rest.partition("__")
        callbacks = dict(cb if isinstance(cb, tuple) else (type(cb).__name__, cb)
                         for cb in net.callbacks or ())
        return name in callbacks and param in callbacks[name].get_params()
    target = getattr(net, head, None) if head in (
        "module", "optimizer", "criterion", "iterator_train", "iterator_valid") else None
    if not isinstance(target, type):
        return False
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return True
    return rest in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
