"""The ``.skops`` form of a model file: a pickle-free description of the estimator that
``skops.io`` reads with an explicit list of trusted types (``TRUSTED_TYPES``).

skops cannot store torch modules, tensors or optimizers (a skorch net pickles them into
bytes inside its state, which skops would keep as an opaque pickle), so the file holds
every estimator and callback as its class and its parameters, fitted scikit-learn
attributes as they are, and for every fitted net its weights and buffers, its optimizer's
state (tensors as numpy arrays), its history and its other fitted attributes. Loading
rebuilds each net from its parameters and puts the weights back. modelfile.py chooses
this form for a ``.skops`` path.
"""
from __future__ import annotations

import inspect
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .._moved import old_paths

SKOPS_SUFFIX = ".skops"
SKOPS_FORMAT = "kfkd_kit.skops/1"

# Every type a .skops model of this toolkit may name, beyond what skops trusts by
# itself (builtins, numpy). Nothing else is ever loaded from a .skops file.
TRUSTED_TYPES = [
    # the toolkit's own estimators, modules, loss, batches and callbacks
    "kfkd_kit.net.estimator.KeypointNet",
    "kfkd_kit.net.pipeline.PixelScaler",
    "kfkd_kit.meta.ensemble.FoldEnsemble",
    "kfkd_kit.meta.ensemble.SeedEnsemble",
    "kfkd_kit.meta.specialists.Specialists",
    "kfkd_kit.meta.tta.FlipTTA",
    "kfkd_kit.meta.stack.StackedKeypoints",
    "kfkd_kit.net.nets.MLP",
    "kfkd_kit.net.nets.CNN",
    "kfkd_kit.net.nets.BNCNN",
    "kfkd_kit.net.losses.MaskedMSELoss",
    "kfkd_kit.net.losses.MaskedL1Loss",
    "kfkd_kit.net.batches.ResidentBatches",
    "kfkd_kit.net.callbacks.TrainValidRatio",
    "kfkd_kit.net.callbacks.EarlyStopping",
    "kfkd_kit.net.callbacks.PretrainedLayers",
    "kfkd_kit.net.callbacks.LinearSchedule",
    "kfkd_kit.net.callbacks.EpochTable",
    "kfkd_kit.net.callbacks.OneCycle",
    "kfkd_kit.net.callbacks.WeightAverage",
    "kfkd_kit.net.budget.TimeBudget",
    "kfkd_kit.net.mirror_axis.MirrorAxis",
    # scikit-learn's and skorch's containers, torch's optimizers and schedule (as classes
    # named by a net's parameters; torch objects themselves are never stored)
    "sklearn.pipeline.Pipeline",
    "sklearn.frozen._frozen.FrozenEstimator",
    "skorch.dataset.Dataset",
    "torch.optim.sgd.SGD",
    "torch.optim.adamw.AdamW",
    "torch.optim.lr_scheduler.OneCycleLR",
    # skorch's EarlyStopping has a ``sink`` parameter, print by default
    "builtins.print",
]
# files saved before the package was grouped name these types by their old module paths
TRUSTED_TYPES += [old for name in TRUSTED_TYPES for old in old_paths(name)]



def _unreadable(path, exc) -> ValueError:
    kind = "skops" if path.suffix == SKOPS_SUFFIX else "joblib"
    why = "it ends too early (truncated?)" if isinstance(exc, EOFError) else _one_line(exc)
    return ValueError(f"{path}: not a readable {kind} model file ({type(exc).__name__}: "
                      f"{why}); retrain it or check the path")


def _one_line(exc) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("..." if len(text) > 200 else "") or "no details"


def skops_bytes(estimator) -> bytes:
    """The ``.skops`` file of a fitted estimator; ValueError if it would name a type
    that ``load_model`` does not trust (before anything is written)."""
    import skops.io as sio
    data = sio.dumps({"format": SKOPS_FORMAT, "estimator": _encode(estimator)})
    extra = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    if extra:
        raise ValueError(f"cannot save {type(estimator).__name__} as .skops: it holds "
                         f"{', '.join(extra)}, which load_model does not trust; save it as "
                         ".joblib instead")
    return data


def load_skops(path):
    """The estimator in a ``.skops`` file, read with ``TRUSTED_TYPES`` only."""
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException
    path = Path(path)
    try:
        untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
    except (zipfile.BadZipFile, KeyError, EOFError) as exc:
        raise _unreadable(path, exc) from None
    if untrusted:
        raise ValueError(f"{path}: refused, it names types kfkd_kit does not trust: "
                         f"{', '.join(untrusted)}")
    try:
        tree = sio.load(path, trusted=TRUSTED_TYPES)
    except UntrustedTypesFoundException as exc:  # in case skops audits more than it listed
        raise ValueError(f"{path}: refused, {_one_line(exc)}") from None
    if not isinstance(tree, dict) or tree.get("format") != SKOPS_FORMAT:
        raise ValueError(f"{path}: a skops file, but not a kfkd_kit model "
                         f"(expected format {SKOPS_FORMAT!r}); save it with kfkd_kit")
    return _decode(tree["estimator"])


_TAG = "__kfkd_object__"


def _encode(value):
    """A tree of builtins, numpy arrays and classes that skops stores as data."""
    from sklearn.base import BaseEstimator
    from skorch import NeuralNet
    from skorch.callbacks import Callback
    import torch
    if isinstance(value, NeuralNet):
        return _encode_net(value)
    if isinstance(value, Callback):   # its parameters; never its training-time state
        return {_TAG: type(value), "params": _encode(value.get_params(deep=False)), "state": {}}
    if isinstance(value, BaseEstimator):
        params = value.get_params(deep=False)
        state = {k: v for k, v in vars(value).items() if k not in params}
        return {_TAG: type(value), "params": _encode(params), "state": _encode(state)}
    if isinstance(value, torch.Tensor):
        return _encode_tensor(value)
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_encode(v) for v in value)
    return value


def _encode_net(net):
    params = {k: v for k, v in net.get_params(deep=False).items() if not k.startswith("_")}
    node = {_TAG: type(net), "params": _encode(params), "state": {}}
    if getattr(net, "initialized_", False):
        parts = {}
        for kind in ("_modules", "_criteria", "_optimizers"):
            for name in getattr(net, kind):
                parts[name] = _encode(getattr(net, name + "_").state_dict())
        node["state"] = {"parts": parts, "history": _encode(net.history_.to_list()),
                         "fitted": _encode(_fitted_attributes(net))}
    return node


# what skorch's initialize() makes again, and the parts stored as state dicts above
_REBUILT = {"callbacks_", "prefixes_", "cuda_dependent_attributes_", "init_context_",
            "virtual_params_", "initialized_", "history_"}


def _fitted_attributes(net) -> dict:
    """The net's fitted attributes other than its torch parts and history: what a fit
    resolved and measured (``precision_``, ``flip_axis_`` that flip TTA mirrors about,
    ``planned_epochs_``, ``budget_plan_``, ...)."""
    parts = {name + "_" for kind in ("_modules", "_criteria", "_optimizers")
             for name in getattr(net, kind)}
    return {k: v for k, v in vars(net).items()
            if k.endswith("_") and not k.startswith("_") and k not in _REBUILT | parts}


def _encode_tensor(tensor):
    import torch
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:       # numpy has no bfloat16: keep its bits
        array = tensor.view(torch.int16).numpy()
    else:
        array = tensor.numpy()
    return {"__tensor__": array, "dtype": str(tensor.dtype).removeprefix("torch.")}


def _decode(value):
    if isinstance(value, dict):
        if "__tensor__" in value and set(value) == {"__tensor__", "dtype"}:
            return _decode_tensor(value)
        if _TAG in value:
            return _decode_object(value)
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_decode(v) for v in value)
    return value


def _decode_tensor(node):
    import torch
    dtype = getattr(torch, str(node["dtype"]), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown tensor dtype {node['dtype']!r}")
    array = np.asarray(node["__tensor__"])
    if dtype == torch.bfloat16:
        return torch.from_numpy(array.copy()).view(torch.bfloat16)
    return torch.from_numpy(array.copy()).to(dtype)


def _decode_object(node):
    from skorch import NeuralNet
    cls, params, state = node[_TAG], _decode(node["params"]), node["state"]
    if not isinstance(cls, type):
        raise ValueError(f"{cls!r} is not a class")
    if isinstance(cls, type) and issubclass(cls, NeuralNet):
        return _decode_net(cls, params, state)
    obj = cls(**params)
    for key, value in _decode(state).items():
        setattr(obj, key, value)
    return obj


def _decode_net(cls, params, state):
    import torch
    from skorch.history import History
    if str(params.get("device") or "cpu").startswith("cuda") and not torch.cuda.is_available():
        params["device"] = "cpu"   # as skorch does when unpickling a CUDA net without CUDA
    # a parameter the file predates takes the class's value for models saved before it
    # existed (KeypointNet.pixel_origin: the convention they were trained under), as a
    # pickle does, not __init__'s default for new nets
    for name in inspect.signature(cls.__init__).parameters:
        if name not in params and name in vars(cls):
            params[name] = vars(cls)[name]
    net = cls(**params)
    if not state:
        return net
    with torch.random.fork_rng(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # precision="auto" saying fp32
        net.initialize()                                  # fresh weights, replaced below
    for name, saved in _decode(state["parts"]).items():
        getattr(net, name + "_").load_state_dict(saved)
    net.history_ = History(_decode(state["history"]))
    if state.get("precision_") is not None:     # a file written before "fitted"
        net.precision_ = state["precision_"]
    for key, value in _decode(state.get("fitted", {})).items():
        setattr(net, key, value)
    return net
