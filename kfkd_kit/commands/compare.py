"""``make compare``: the saved models side by side, so a user sees which one to submit.

One row per model file in a folder (``models/`` by default: ``*.joblib`` and ``*.skops``),
read from the JSON beside it (modelfile.json_path): the net, epochs run, training time,
validation RMSE (a fold ensemble's or a grid refit's: the mean cross-validation RMSE,
marked "cv"), the short data fingerprint, the file, and whether the file's sha256 matches
the one its JSON records. A model without a JSON is listed with its file alone; a JSON
whose model file is gone is listed as "missing". Sorted by validation RMSE, best first.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..utils.modelfile import SKOPS_SUFFIX, headline_rmse, read_record, sha256_of
from . import _options

MODEL_SUFFIXES = (".joblib", SKOPS_SUFFIX)
COLUMNS = ("net", "epochs", "train time", "valid RMSE px", "data", "file", "sha256")


def _epochs(value):
    if isinstance(value, dict):   # specialists: one count per net
        counts = sorted(v for v in value.values() if isinstance(v, int))
        return f"{counts[0]}-{counts[-1]} ({len(counts)} nets)" if counts else None
    return value


def _seconds(value):
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    minutes, seconds = divmod(float(value), 60)
    return f"{int(minutes)} min {seconds:.0f} s" if minutes else f"{seconds:.1f} s"


def _sha_check(model: Path, record) -> str:
    if not model.is_file():
        return "missing file"
    if not isinstance(record, dict) or not record.get("sha256"):
        return "no record"
    if record.get("file") not in (None, model.name):
        return f"records {record.get('file')}"
    return "ok" if sha256_of(model) == record["sha256"] else "MISMATCH"


def model_row(model: Path, meta) -> dict:
    """One model's row (see the module docstring); ``meta`` its JSON, or None."""
    row = dict.fromkeys(COLUMNS)
    row["file"] = model.name
    if meta is None:
        row["sha256"] = "no JSON" if model.is_file() else "missing file"
        row["_sort"] = math.inf
        return row
    metrics = meta.get("metrics") or {}
    row["net"] = meta.get("net")
    if meta.get("kind") not in (None, "train"):
        row["net"] = f"{row['net']} ({meta['kind']})"
    row["epochs"] = _epochs(metrics.get("epochs_run"))
    row["train time"] = _seconds(metrics.get("train_seconds"))
    rmse, of = headline_rmse(meta)
    row["_sort"] = math.inf if rmse is None or not math.isfinite(rmse) else rmse
    row["valid RMSE px"] = None if row["_sort"] == math.inf else (
        f"{rmse:.3f}" + ("" if of == "validation" else f" ({of})"))
    fingerprint = (meta.get("data") or {}).get("fingerprint")
    row["data"] = fingerprint[:8] if isinstance(fingerprint, str) else None
    row["sha256"] = _sha_check(model, meta.get("model_file"))
    return row


def compare_models(folder="models") -> pd.DataFrame:
    """The table of every model in ``folder``, best validation RMSE first (models with
    no RMSE last, by file name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of models")
    models = {p for p in folder.iterdir() if p.suffix in MODEL_SUFFIXES and p.is_file()}
    rows = []
    for model in sorted(models):
        meta = read_record(model)
        rows.append(model_row(model, meta))
    described = {p.name for p in models}
    for path in sorted(folder.glob("*.json")):   # a JSON whose model file is gone
        meta = read_record(path)
        record = (meta or {}).get("model_file")
        if isinstance(record, dict) and record.get("file") and record["file"] not in described:
            rows.append(model_row(folder / record["file"], meta))
    table = pd.DataFrame(rows, columns=[*COLUMNS, "_sort"])
    table = table.sort_values(["_sort", "file"], kind="stable").drop(columns="_sort")
    return table.reset_index(drop=True)


def format_table(table: pd.DataFrame) -> str:
    if table.empty:
        return "no models"
    return table.fillna("").to_markdown(index=False)


def run_compare(folder="models", say=print) -> pd.DataFrame:
    """``kfkd compare``: print the table of ``folder``'s models. Returns it."""
    table = compare_models(folder)
    say(format_table(table) if len(table) else f"no models in {folder}")
    return table


def add_parser(sub):
    p = _options.command_parser(sub, "compare")
    p.add_argument("--models-dir", default="models", metavar="FOLDER",
                   help="the folder of the saved models")
    p.set_defaults(func=run)


def run(args):
    run_compare(args.models_dir)
