"""Saved models: the fitted estimator in a model file, and a JSON record beside it.

Two formats, chosen by the model path's suffix:

- ``.joblib`` (or any other suffix): the whole fitted estimator, pickled by joblib.
  A pickle runs code when it is loaded: load only models you trust.
- ``.skops``: a pickle-free file read by ``skops.io`` with an explicit list of trusted
  types (``TRUSTED_TYPES``). skops cannot store torch modules, tensors or optimizers (a
  skorch net pickles them into bytes inside its state, which skops would keep as an
  opaque pickle), so the file holds a plain description of the estimator instead: every
  estimator and callback as its class and its parameters, fitted scikit-learn attributes
  as they are, and for every fitted net its weights and buffers, its optimizer's state
  (tensors as numpy arrays), its history and its other fitted attributes (the precision
  it ran in, the mirror axis flip TTA uses, its epoch plan). Loading rebuilds
  each net from its parameters and puts the weights back. The callbacks' training-time
  state (e.g. where a learning-rate schedule stood) is not stored.

The JSON beside a model (``path.with_suffix(".json")``) is the model's record, one shape
for every writer (train, the grid's refit, the fold ensemble): ``net``, ``kind``, ``metrics``
(with ``rmse_px``, the headline RMSE, and ``rmse_of``, what it was measured on), ``data``,
``versions``; and, under ``model_file``, the sha256 of the exact bytes written. ``load_model`` (``make submit``) refuses a model
whose bytes do not match it, or that has no such record, unless told to trust it.
"""
from __future__ import annotations

import hashlib
import json
import re
import warnings
import zipfile
from pathlib import Path

import joblib
import numpy as np

from .._moved import old_paths
from .atomic import atomic_write, write_json

# every command that loads a model (submit, report, predict, export) takes --trust, and its
# make target TRUST=1
TRUST_HINT = "pass --trust (with make: TRUST=1) to load it anyway"
# the names of the named nets (configs.CONFIGS), whose default path is models/<name>.joblib
_NET_NAME = re.compile(r"net\d+|specialists")
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


# --------------------------------------------------------------------------- saving


RMSE_OF = ("validation", "cv")   # a net's own validation rows; the mean over CV folds


def model_record(net, kind, rmse_px, rmse_of, metrics=None, **fields) -> dict:
    """The record every model writer saves beside its model (train, the grid's refit, the
    fold ensemble), and compare and report read: ``metrics["rmse_px"]`` is the headline
    RMSE (None without one) and ``metrics["rmse_of"]`` says what it was measured on."""
    if rmse_of not in RMSE_OF:
        raise ValueError(f"rmse_of must be one of {RMSE_OF}, got {rmse_of!r}")
    rmse = None if rmse_px is None else float(rmse_px)
    return {"net": net, "kind": kind, **fields,
            "metrics": dict(metrics or {}, rmse_px=rmse, rmse_of=rmse_of)}


def headline_rmse(record) -> tuple[float | None, str | None]:
    """(rmse_px, rmse_of) of a model record, (None, None) for a record without them."""
    metrics = (record or {}).get("metrics")
    if not isinstance(metrics, dict) or not isinstance(metrics.get("rmse_px"), (int, float)):
        return None, None
    return float(metrics["rmse_px"]), metrics.get("rmse_of")


def save_model(estimator, path, metadata: dict) -> tuple[Path, Path]:
    """Write the fitted estimator to ``path`` (joblib, or skops for a ``.skops`` path) and
    ``metadata`` plus the file's sha256 (``model_file``) to ``path.json``, both atomically.
    The toolkit's writers pass ``model_record(...)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == SKOPS_SUFFIX:
        payload = skops_bytes(estimator)
        digest = hashlib.sha256(payload)
        with atomic_write(path, "wb") as f:
            f.write(payload)
        size, kind = len(payload), "skops"
    else:
        with atomic_write(path, "wb") as f:
            writer = _HashingWriter(f)
            joblib.dump(estimator, writer)
        digest, size, kind = writer.sha256, writer.size, "joblib"
    record = {"file": path.name, "format": kind, "bytes": size, "sha256": digest.hexdigest()}
    return path, write_json(json_path(path), dict(metadata, model_file=record))


def json_path(path) -> Path:
    """The JSON record beside a model file."""
    return Path(path).with_suffix(".json")


def read_record(path) -> dict | None:
    """The record of a model: the JSON beside model file ``path`` (or ``path`` itself when it
    is the JSON). None when it is missing or not a JSON object."""
    path = Path(path)
    try:
        record = json.loads((path if path.suffix == ".json" else json_path(path)).read_text(
            encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


class _HashingWriter:
    """A binary file for joblib.dump that hashes every byte it passes on."""

    def __init__(self, f):
        self._f = f
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data):
        view = memoryview(data).cast("B")
        self.sha256.update(view)
        self.size += view.nbytes
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)


def sha256_of(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- loading


def train_hint(path) -> str:
    """The command that saves a model at ``path``: a named net's default path,
    models/net8.joblib, is `make train NET=net8`'s; any other path is given as MODEL=."""
    path = Path(path)
    named = path.parent == Path("models") and path.suffix == ".joblib"
    if named and _NET_NAME.fullmatch(path.stem):
        return f"kfkd train --net {path.stem} (make train NET={path.stem})"
    return f"kfkd train --net NET --model {path} (make train NET=NET MODEL={path})"


def load_model(path, trust: bool = False):
    """The fitted keypoint model saved at ``path``, checked before it is used.

    The file's sha256 must match the one its JSON records (``trust=True`` skips that
    check, for a model from elsewhere); a ``.skops`` file is read with ``TRUSTED_TYPES``
    only, trusted or not. The model must predict 30 keypoint columns for a 96x96 image.
    Every refusal is a one-line ValueError naming the file and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model; train it first: {train_hint(path)}")
    if not trust:
        check_sha256(path)
    model = _read(path)
    check_keypoint_model(model, path)
    return model


def check_sha256(path) -> None:
    """Raise ValueError unless ``path``'s bytes have the sha256 its JSON records."""
    path = Path(path)
    record = json_path(path)
    if not record.is_file():
        raise ValueError(f"{path}: no {record.name} beside it records the model's sha256, so "
                         f"it cannot be checked (a model from elsewhere?); {TRUST_HINT} "
                         "if you trust where it came from")
    try:
        saved = json.loads(record.read_text(encoding="utf-8")).get("model_file") or {}
    except (ValueError, AttributeError):
        raise ValueError(f"{record}: not a readable JSON record of {path.name}; retrain, "
                         f"or {TRUST_HINT}") from None
    expected = saved.get("sha256") if isinstance(saved, dict) else None
    if not expected:
        raise ValueError(f"{path}: {record.name} records no sha256 (saved by an older "
                         f"kfkd_kit); retrain it, or {TRUST_HINT}")
    if saved.get("file") not in (None, path.name):
        raise ValueError(f"{path}: {record.name} describes {saved['file']}, not {path.name} "
                         f"(models sharing a stem share a JSON); retrain it, or {TRUST_HINT}")
    actual = sha256_of(path)
    if actual != expected:
        raise ValueError(f"{path}: sha256 {actual[:12]}... does not match {expected[:12]}... "
                         f"recorded in {record.name} (changed or damaged since it was "
                         f"saved); retrain it, or {TRUST_HINT}")


def _read(path: Path):
    try:
        if path.suffix == SKOPS_SUFFIX:
            return load_skops(path)
        model = joblib.load(path)
    except ValueError as exc:
        if str(exc).startswith(f"{path}:"):
            raise
        raise _unreadable(path, exc) from None
    except Exception as exc:  # unpickling arbitrary bytes can raise anything
        raise _unreadable(path, exc) from None
    return model


def _unreadable(path, exc) -> ValueError:
    kind = "skops" if path.suffix == SKOPS_SUFFIX else "joblib"
    why = "it ends too early (truncated?)" if isinstance(exc, EOFError) else _one_line(exc)
    return ValueError(f"{path}: not a readable {kind} model file ({type(exc).__name__}: "
                      f"{why}); retrain it or check the path")


def _one_line(exc) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("..." if len(text) > 200 else "") or "no details"


def check_keypoint_model(model, path) -> None:
    """Raise ValueError unless ``model`` predicts (n, 30) keypoints from (n, 9216) images."""
    from ..keypoints import N_PIXELS, N_TARGETS
    if not hasattr(model, "predict"):
        raise ValueError(f"{path}: holds a {type(model).__name__}, not a fitted model; "
                         "retrain it or check the path")
    probe = np.zeros((1, N_PIXELS), np.uint8)
    try:
        shape = np.shape(model.predict(probe))
    except Exception as exc:  # whatever the model raises, say it in one line
        raise ValueError(f"{path}: cannot predict keypoints for a 96x96 image "
                         f"({type(exc).__name__}: {_one_line(exc)}); retrain it") from None
    if shape != (1, N_TARGETS):
        raise ValueError(f"{path}: predicts shape {shape} for one image, expected (1, "
                         f"{N_TARGETS}): trained for other columns; retrain it on Kaggle's "
                         f"{N_TARGETS} keypoint columns")


# --------------------------------------------------------------------------- skops


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
