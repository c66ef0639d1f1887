"""`kfkd cv`: shuffled, seeded, grouped k-fold cross-validation of a named net.

Writes ``cv/<net>-<UTC time>.csv`` (one row per fold) and a JSON summary; with
``--keep-models`` the k fold models are saved as one ``ensemble.FoldEnsemble`` that submit
takes. The machinery is ``selection.cross_validate_net`` (plain scikit-learn).
"""
from __future__ import annotations

from pathlib import Path

from ..utils.atomic import create_unique, utc_stamp, write_json
from ..utils.modelfile import model_record, save_model
from ..utils.provenance import library_versions
from ..search.selection import CVResult, cross_validate_net
from . import _options
from ._shared import load_data


def add_parser(sub):
    p = _options.command_parser(sub, "cv")
    _options.add_common(p)
    _options.add_selection(p, folds=5)
    p.add_argument("--keep-models", action="store_true",
                   help="save the k fold models as one ensemble (usable by submit)")
    _options.add_model(p, "where the kept ensemble goes (default: "
                          "models/<net>-cv<k>.ensemble.joblib)", default=None)
    p.set_defaults(func=run)


def run(args):
    run_cv(_options.estimator(args), keep_models=args.keep_models,
           **_options.selection_kwargs(args))


def write_cv(result: CVResult, out_dir="cv", meta=None, when=None) -> tuple[Path, Path]:
    """``<out_dir>/<net>-<UTC time>.csv`` (one row per fold) and ``.json`` (summary with
    ``meta``, e.g. the data's source and fingerprint, and library versions). Atomic."""
    import pandas as pd
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = create_unique(out_dir / f"{result.net}-{utc_stamp(when)}.csv",
                             pd.DataFrame(result.rows).to_csv(index=False))
    stem = csv_path.stem                  # the CSV's new name gives the run its own stem
    payload = dict(result.summary(), created_utc=utc_stamp(when), csv=str(csv_path),
                   data=dict(meta or {}), versions=library_versions())
    json_path = write_json(out_dir / f"{stem}.json", payload)
    return csv_path, json_path





def save_ensemble(result: CVResult, path=None, meta=None) -> tuple[Path, Path]:
    """Save ``result.ensemble`` (from ``keep_models=True``) as one joblib estimator + JSON:
    ``models/<net>-cv<k>.ensemble.joblib`` by default; ``make submit MODEL=...`` uses it."""
    if result.ensemble is None:
        raise ValueError("no fold models kept; run cross_validate_net with keep_models=True")
    path = Path(path or f"models/{result.net}-cv{result.folds}.ensemble.joblib")
    summary = result.summary()
    metadata = model_record(
        result.net, "fold-ensemble", result.mean_rmse_px, "cv",
        metrics={"epochs_run": summary["epochs"], "train_seconds": summary["seconds"]},
        **{k: v for k, v in summary.items() if k not in ("net", "kind")},
        models=len(result.ensemble.estimators_), data=dict(meta or {}), versions=library_versions())
    return save_model(result.ensemble, path, metadata)


def run_cv(estimator, name="custom", data_dir="data", folds=5, random_state=0, out_dir="cv",
           keep_models=False, model_path=None, scheduler=None, dask_workers=None,
           say=print) -> dict:
    """``kfkd cv``: load data, cross-validate, print the table, write CSV + JSON (and the
    fold ensemble with ``keep_models``). Returns the summary dict with the file paths."""
    training, meta = load_data(estimator, data_dir, say)
    result = cross_validate_net(estimator, training.X, training.y, folds=folds,
                                random_state=random_state,
                                keep_models=keep_models, scheduler=scheduler,
                                dask_workers=dask_workers, name=name, say=say)
    say(result.table())
    csv_path, json_path = write_cv(result, out_dir, meta)
    summary = dict(result.summary(), csv=str(csv_path), json=str(json_path))
    say(f"per-fold table: {csv_path}; summary: {json_path}")
    if keep_models:
        model, _ = save_ensemble(result, model_path, meta)
        summary["model"] = str(model)
        say(f"fold ensemble ({folds} models) saved to {model}")
    return summary
