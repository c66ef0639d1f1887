"""Saved models: the fitted estimator in a model file, and a JSON record beside it.

Two formats, chosen by the model path's suffix:

- ``.joblib`` (or any other suffix): the whole fitted estimator, pickled by joblib.
  A pickle runs code when it is loaded: load only models you trust.
- ``.skops``: a pickle-free file read by ``skops.io`` with an explicit list of trusted
  types; skopsfile.py says what it holds and how a net is rebuilt from it.

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
from pathlib import Path

import joblib
import numpy as np

from .atomic import atomic_write, write_json
# TRUSTED_TYPES: still importable from here, where callers have long found it
from .skopsfile import (SKOPS_SUFFIX, TRUSTED_TYPES, _one_line, _unreadable,  # noqa: F401
                        load_skops, skops_bytes)

# every command that loads a model (submit, report, predict, export) takes --trust, and its
# make target TRUST=1
TRUST_HINT = "pass --trust (with make: TRUST=1) to load it anyway"
# the names of the named nets (configs.CONFIGS), whose default path is models/<name>.joblib
_NET_NAME = re.compile(r"net\d+|specialists")


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
