"""Out-of-fold predictions as files a user can read, and reading them back for stacking.

`kfkd cv` writes three files beside its results for its run ``<net>-<UTC>``:

- ``oof-<run>.csv``: one row per training row, ``RowIndex`` (its 0-based data row in the
  training file), ``fold`` (1..k, the fold that held it out) and Kaggle's 30 keypoint
  columns, predicted by that fold's model (never NaN);
- ``oof-<run>-test.csv`` (when the data folder has a test file): ``ImageId``, ``fold`` and
  the 30 columns, one row per test image and fold model;
- ``oof-<run>.json``: the run, its net and settings, folds, seed, the data's fingerprint,
  the sha256 of the folds, the two files' names and, with ``--keep-models``, the fold
  models' file and its sha256.

``read_run`` reads a run back (checked: one line naming the file, row and column of
anything wrong); stacking.py stacks runs that share their data and folds.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..keypoints import FEATURE_NAMES

__all__ = ["OOFRun", "oof_paths", "oof_tables", "oof_record", "folds_sha256", "read_run",
           "find_run"]

KIND = "oof"


def oof_paths(out_dir, run: str) -> dict:
    """{"json", "train", "test"}: the paths of run ``run``'s files in ``out_dir``."""
    out_dir = Path(out_dir)
    return {"json": out_dir / f"oof-{run}.json", "train": out_dir / f"oof-{run}.csv",
            "test": out_dir / f"oof-{run}-test.csv"}


def folds_sha256(fold_of) -> str:
    """The sha256 of each row's fold (int64): equal for runs that share their folds."""
    return hashlib.sha256(np.ascontiguousarray(fold_of, dtype=np.int64).tobytes()).hexdigest()


def _columns(k):
    return list(FEATURE_NAMES) if k == len(FEATURE_NAMES) else [f"y{j}" for j in range(k)]


def oof_tables(result, image_ids=None):
    """(training rows' DataFrame, test images' DataFrame or None) of a CVResult."""
    import pandas as pd
    columns = _columns(result.oof.shape[1])
    train = pd.DataFrame(result.oof, columns=columns)
    train.insert(0, "fold", result.fold_of.astype(np.int64))
    train.insert(0, "RowIndex", np.arange(len(result.oof), dtype=np.int64))
    if result.test_predictions is None:
        return train, None
    folds, m, _ = result.test_predictions.shape
    test = pd.DataFrame(result.test_predictions.reshape(folds * m, -1), columns=columns)
    test.insert(0, "fold", np.repeat(np.arange(1, folds + 1), m))
    ids = np.arange(1, m + 1) if image_ids is None else np.asarray(image_ids, dtype=np.int64)
    test.insert(0, "ImageId", np.tile(ids, folds))
    return train, test


def oof_record(result, run: str, data=None, test=None, model=None, created_utc=None,
               versions=None) -> dict:
    """The JSON of a run's out-of-fold files: what stacking checks and needs."""
    paths = oof_paths(".", run)
    return {"kind": KIND, "run": run, "net": result.net, "folds": result.folds,
            "seed": result.seed, "rows": result.n_rows, "epochs": result.epochs,
            "params": result.params, "mean_rmse_px": result.mean_rmse_px,
            "oof_rmse_px": result.oof_rmse_px, "folds_sha256": folds_sha256(result.fold_of),
            "data": dict(data or {}), "test": test,
            "files": {"train": paths["train"].name,
                      "test": None if result.test_predictions is None else paths["test"].name},
            "model": model, "created_utc": created_utc, "versions": versions or {}}


@dataclass
class OOFRun:
    """One cv run's out-of-fold predictions, read back."""
    name: str
    path: Path                  # its JSON
    record: dict
    predictions: np.ndarray     # (n, 30) float32, each row by the fold model that held it out
    fold_of: np.ndarray         # (n,) 1..folds
    test_ids: np.ndarray | None = None          # (m,)
    test_predictions: np.ndarray | None = None  # (folds, m, 30)

    @property
    def model(self) -> dict | None:
        """{"path", "sha256"} of the run's kept fold models, or None."""
        return self.record.get("model")

    def check_data(self, training, hint) -> None:
        """A one-line ValueError unless this run predicted ``training``'s rows (the same
        data fingerprint and row count); ``hint`` ends the message: what to give instead."""
        data = self.record.get("data") or {}
        if data.get("fingerprint") != training.fingerprint:
            raise ValueError(f"{self.path}: its data (fingerprint {data.get('fingerprint')}) "
                             f"is not {training.source} (fingerprint {training.fingerprint}); "
                             f"{hint}")
        if len(self.predictions) != len(training.X):
            raise ValueError(f"{self.path}: {len(self.predictions)} rows, but "
                             f"{training.source} has {len(training.X)}")


def find_run(text) -> Path:
    """The JSON of a run named on the command line: ``cv/oof-<run>.json``, the run's cv
    files (``cv/<run>.json``, ``.csv``) or either without its suffix."""
    path = Path(text)
    stem = path.stem if path.suffix in (".json", ".csv") else path.name
    stem = stem.removeprefix("oof-").removesuffix("-test")
    found = path.parent / f"oof-{stem}.json"
    if not found.is_file():
        raise FileNotFoundError(f"{text}: no out-of-fold predictions ({found} is missing); "
                                f"give a run of make cv, e.g. cv/<net>-<time> or "
                                f"cv/oof-<net>-<time>.json")
    return found


def _error(path, row, column, what):
    where = f"row {row}, column {column}" if row is not None else f"column {column}"
    return ValueError(f"{path}: {where}: {what}")


def _read_table(path, key, folds, k):
    import pandas as pd
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable CSV ({' '.join(str(exc).split())[:160]})") \
            from None
    columns = [key, "fold", *_columns(k)]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise _error(path, None, missing[0], "missing (expected "
                     f"{key}, fold and the {k} keypoint columns)")
    for column in columns:
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise _error(path, int(bad[0]) + 1, column,
                         f"{str(table[column].iloc[bad[0]])!r} is not a number")
        if column in (key, "fold") and (values != np.round(values)).any():
            row = int(np.flatnonzero(values != np.round(values))[0]) + 1
            raise _error(path, row, column, f"{float(values[row - 1])!r} is not a whole number")
    fold = table["fold"].to_numpy(dtype=np.int64)
    bad = np.flatnonzero((fold < 1) | (fold > folds))
    if len(bad):
        raise _error(path, int(bad[0]) + 1, "fold", f"{fold[bad[0]]} is not a fold of 1..{folds}")
    return (table[key].to_numpy(dtype=np.int64), fold,
            table[_columns(k)].to_numpy(dtype=np.float64).astype(np.float32))


def read_run(text) -> OOFRun:
    """A run's out-of-fold predictions (``find_run``'s names), checked."""
    path = find_run(text)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: not a readable JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("kind") != KIND:
        raise ValueError(f"{path}: not the record of out-of-fold predictions (its kind is "
                         f"not {KIND!r}); it is written by make cv")
    for key in ("run", "folds", "rows", "folds_sha256", "files"):
        if key not in record:
            raise ValueError(f"{path}: has no {key!r}; written by make cv, not edited")
    folds, n = int(record["folds"]), int(record["rows"])
    train_path = path.parent / record["files"]["train"]
    rows, fold_of, predictions = _read_table(train_path, "RowIndex", folds, len(FEATURE_NAMES))
    if len(rows) != n or not np.array_equal(rows, np.arange(n)):
        raise _error(train_path, None, "RowIndex",
                     f"expected rows 0..{n - 1} in order, as {path.name} records {n} rows")
    if folds_sha256(fold_of) != record["folds_sha256"]:
        raise _error(train_path, None, "fold", f"the folds differ from those {path.name} "
                                               "records (edited?)")
    run = OOFRun(name=str(record["run"]), path=path, record=record, predictions=predictions,
                 fold_of=fold_of)
    if record["files"].get("test"):
        test_path = path.parent / record["files"]["test"]
        ids, test_fold, values = _read_table(test_path, "ImageId", folds, len(FEATURE_NAMES))
        m = len(ids) // folds
        if len(ids) != m * folds or any(
                not np.array_equal(test_fold[k * m:(k + 1) * m], np.full(m, k + 1))
                or not np.array_equal(ids[k * m:(k + 1) * m], ids[:m]) for k in range(folds)):
            raise _error(test_path, None, "fold", f"expected the same {m} images for each of "
                                                  f"the {folds} folds in turn")
        run.test_ids, run.test_predictions = ids[:m], values.reshape(folds, m, -1)
    return run
