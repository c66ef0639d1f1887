"""Saved models: a joblib file of the whole fitted estimator and a JSON record beside it.

joblib (pickle) files run code when they are loaded: load only models you trust.
"""
from __future__ import annotations

from pathlib import Path

import joblib

from ._atomic import atomic_write, write_json


def save_model(estimator, path, metadata: dict) -> tuple[Path, Path]:
    """joblib the fitted estimator to ``path`` and write ``metadata`` to ``path.json``,
    both atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        joblib.dump(estimator, f)
    return path, write_json(path.with_suffix(".json"), metadata)


def load_model(path):
    """The fitted estimator saved at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model; run `make train` first")
    return joblib.load(path)
