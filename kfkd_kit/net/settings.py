"""A net's settings under one name each, set and read back on any estimator around it.

``configure(estimator, epochs=3, seed=1, ...)`` applies overrides with set_params under
their one name (``OVERRIDES``); ``settings(estimator)`` reads them back, the one record
train, cv, grid and zoo write into their JSON; ``load_params``/``apply_params`` take a net's
parameters from a file (PARAMS=, what ``kfkd tune`` writes); ``set_head`` gives net8 (a
BNCNN) its dense or soft-argmax head. How models nest is nested.py's to know.
"""
from __future__ import annotations

import torch

from .callbacks import LinearSchedule, OneCycle
from .nested import inner_net, net_prefix
from .nets import BNCNN, CNN


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
    "pixel_origin": "pixel_origin",
}


def head_params(estimator, head: str) -> dict:
    """The set_params that give the BNCNN (net8) inside ``estimator`` the head ``head``
    ("dense" or "softargmax") and that head's layers (``BNCNN.HEAD_LAYERS``); a one-line
    ValueError for another head or another net."""
    prefix = net_prefix(estimator)
    return {prefix + key: value
            for key, value in net_head_params(inner_net(estimator).module, head).items()}


def net_head_params(module, head: str) -> dict:
    """``head_params`` for a net whose module is ``module``, named relative to the net."""
    if head not in BNCNN.HEADS:
        raise ValueError(f"heads must be among {', '.join(BNCNN.HEADS)}, got {head!r}")
    if not (isinstance(module, type) and issubclass(module, BNCNN)):
        raise ValueError("a choice of heads needs a BNCNN net (net8)")
    return {"module__head": head, "module__layers": BNCNN.HEAD_LAYERS[head]}


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
    ``budget`` (seconds per fit: the net times its first epochs and runs as many as fit),
    ``pixel_origin`` (the labels' x of the top-left pixel's centre: 0.5, 1 or 0; keypoints.py).
    """
    net = inner_net(estimator)
    params = override_params(net.get_params(deep=False), _named_callbacks(net), overrides)
    prefix = net_prefix(estimator)
    return estimator.set_params(**{prefix + key: value for key, value in params.items()})


def override_params(net_params: dict, callbacks: dict, overrides: dict) -> dict:
    """The overrides (``configure``'s) as the net's parameters, named relative to it, for a
    net of ``net_params`` (its "module" and "optimizer" at least) and ``callbacks``
    ({name: a callback, or (its class, its parameters)})."""
    unknown = set(overrides) - set(OVERRIDES)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(OVERRIDES)}")
    optimizer, module = net_params.get("optimizer"), net_params.get("module")
    params = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "patience":
            value = value or None
        if key == "momentum" and optimizer is not torch.optim.SGD:
            raise ValueError(f"momentum applies to SGD; this net uses {optimizer.__name__}")
        params[OVERRIDES[key]] = value
        if key == "lr" and _class_of(callbacks.get("lr_schedule")) is OneCycle:
            params["callbacks__lr_schedule__max_lr"] = value
        if key == "device" and module in (CNN, BNCNN):
            params["module__channels_last"] = str(value) == "cpu"
    return params


def _class_of(callback):
    return callback[0] if isinstance(callback, tuple) else type(callback)


def _named_callbacks(net) -> dict:
    return dict(cb if isinstance(cb, tuple) else (type(cb).__name__, cb)
                for cb in net.callbacks or ())


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
        "flip_axis": net.flip_axis, "budget_s": net.budget, "pixel_origin": net.pixel_origin,
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
    check_params(net.get_params(deep=False), _named_callbacks(net), params, source)
    prefix = net_prefix(estimator)
    return estimator.set_params(**{prefix + key: value for key, value in params.items()})


def check_params(net_params: dict, callbacks: dict, params: dict, source="params") -> dict:
    """``params`` (named relative to the net), once each is known to set something that
    exists on a net of ``net_params`` and ``callbacks`` (``override_params``'s); an
    unknown one is a one-line ValueError naming ``source``. skorch itself takes any
    "module__..." and fails only when the net is built, hours later."""
    unknown = [key for key in params if not _known(net_params, callbacks, key)]
    if unknown:
        module = net_params.get("module")
        raise ValueError(f"{source}: unknown parameter(s) {', '.join(map(repr, unknown))} for "
                         f"{module.__name__ if isinstance(module, type) else 'this'} net")
    return params


def _net_defaults() -> dict:
    """{parameter: default} of KeypointNet's constructor and its bases'."""
    import inspect

    from .estimator import KeypointNet
    defaults = {}
    for cls in reversed(KeypointNet.__mro__):
        if "__init__" in vars(cls):
            defaults |= {name: p.default
                         for name, p in inspect.signature(cls.__init__).parameters.items()
                         if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and name != "self"}
    return defaults


def _known_param(net, key) -> bool:
    """Whether ``net.set_params(**{key: ...})`` sets something that exists."""
    return _known(net.get_params(deep=False), _named_callbacks(net), key)


def _known(net_params, callbacks, key) -> bool:
    import inspect
    if key in net_params or key in _net_defaults():
        return True
    head, _, rest = key.partition("__")
    if not rest:
        return False
    if head == "callbacks":
        name, _, param = rest.partition("__")
        if name not in callbacks:
            return False
        callback = callbacks[name]
        if isinstance(callback, tuple):          # (class, parameters): not built yet
            callback = callback[0](**callback[1])
        return param in callback.get_params()
    target = None
    if head in ("module", "optimizer", "criterion", "iterator_train", "iterator_valid"):
        target = net_params.get(head, _net_defaults().get(head))   # a default not given yet
    if not isinstance(target, type):
        return False
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return True
    return rest in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
