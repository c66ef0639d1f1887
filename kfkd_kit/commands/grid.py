"""`kfkd grid`: GridSearchCV over learning rate x momentum for a named net.

Writes the full ``cv_results_`` (CSV, with RMSE px columns), the best parameters (JSON) and
the lr x momentum heatmap (PNG) under ``cv/``; with ``--refit`` the best refitted on all rows
is saved like ``make train`` saves a model. The search is ``selection.grid_search``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..utils.atomic import create_unique, utc_stamp, write_json
from ..utils.modelfile import model_record, save_model
from ..utils.provenance import library_versions
from ..search.grid import (DEFAULT_LRS, DEFAULT_MOMENTA, _lr, _momentum, format_grid, grid_search,
                           grid_table, heatmap_matrix, parse_floats)
from ..search.selection import fit_summary
from . import _options, _plots as plots
from ._shared import load_data, with_layout


def add_parser(sub):
    p = _options.command_parser(sub, "grid")
    _options.add_common(p)
    _options.add_selection(p, folds=3)
    p.add_argument("--lrs", default=None, metavar="LIST",
                   help="learning rates, comma-separated (default: 0.001,0.003,0.01,0.03)")
    p.add_argument("--momenta", default=None, metavar="LIST",
                   help="momenta, comma-separated (default: 0.8,0.9,0.95)")
    p.add_argument("--refit", action="store_true", help="refit the best on all rows and save it")
    _options.add_model(p, "where the refit model goes (default: models/<net>-grid.joblib)",
                       default=None)
    p.set_defaults(func=run)


def run(args):
    run_grid(_options.estimator(args), lrs=parse_floats(args.lrs),
             momenta=parse_floats(args.momenta), refit=args.refit,
             **_options.selection_kwargs(args))


def write_grid(search, out_dir="cv", meta=None, when=None, net=None) -> tuple[Path, Path, Path]:
    """Full ``cv_results_`` (CSV, with RMSE px columns added), best parameters (JSON) and
    the lr x momentum heatmap (PNG) as ``<out_dir>/<net>-grid-<UTC time>{.csv,-best.json,.png}``."""
    import pandas as pd

    info = dict(getattr(search, "run_info_", {}))
    net = net or info.get("net", "custom")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    results = search.cv_results_
    frame = pd.DataFrame({k: (list(v) if k == "params" else v) for k, v in results.items()})
    frame["params"] = [json.dumps(p) for p in results["params"]]
    frame.insert(0, "lr", [_lr(p) for p in results["params"]])
    frame.insert(1, "momentum", [_momentum(p) for p in results["params"]])
    frame["mean_rmse_px"] = -np.asarray(results["mean_test_score"])
    frame["std_rmse_px"] = np.asarray(results["std_test_score"])
    for k in range(search.n_splits_):
        frame[f"split{k}_rmse_px"] = -np.asarray(results[f"split{k}_test_score"])
    csv_path = create_unique(out_dir / f"{net}-grid-{utc_stamp(when)}.csv", frame.to_csv(index=False))
    stem = csv_path.stem                  # the CSV's new name gives the run its own stem

    lrs, momenta, rmse = heatmap_matrix(search)
    png_path = plots.grid_heatmap(lrs, momenta, rmse, out_dir / f"{stem}.png",
                                  title=f"{net}: mean {search.n_splits_}-fold CV RMSE (px)")
    best = grid_table(search)[0]
    payload = {
        "kind": "grid", "net": net, "created_utc": utc_stamp(when),
        "best_params": {"lr": best["lr"], "momentum": best["momentum"]},
        "best_params_sklearn": search.best_params_,
        "best_mean_rmse_px": best["mean_rmse_px"], "best_std_rmse_px": best["std_rmse_px"],
        "std_ddof": 0, "folds": search.n_splits_,
        "best_per_fold_rmse_px": [float(-results[f"split{k}_test_score"][search.best_index_])
                                  for k in range(search.n_splits_)],
        "candidates": grid_table(search), "search": info,
        "files": {"cv_results": str(csv_path), "heatmap": str(png_path)},
        "data": dict(meta or {}), "versions": library_versions()}
    json_path = write_json(out_dir / f"{stem}-best.json", payload)
    return csv_path, json_path, png_path


def save_refit(search, path=None, meta=None) -> tuple[Path, Path]:
    """Save ``search.best_estimator_`` (needs ``refit=True``) like ``make train`` does:
    ``models/<net>-grid.joblib`` + JSON, so ``make submit MODEL=...`` can use it."""
    if not hasattr(search, "best_estimator_"):
        raise ValueError("the search was not refitted; run it with refit=True")
    info = dict(getattr(search, "run_info_", {}))
    net = info.get("net", "custom")
    path = Path(path or f"models/{net}-grid.joblib")
    model = search.best_estimator_
    seconds, epochs_run = fit_summary(model)
    best = grid_table(search)[0]
    metadata = model_record(
        net, "grid-refit", best["mean_rmse_px"], "cv",
        metrics={"cv_mean_rmse_px": best["mean_rmse_px"],
                 "cv_std_rmse_px": best["std_rmse_px"], "cv_folds": search.n_splits_,
                 "epochs_run": epochs_run, "train_seconds": seconds,
                 "refit_seconds": getattr(search, "refit_time_", None)},
        params={"seed": info.get("seed"), "lr": best["lr"], "momentum": best["momentum"],
                "max_epochs": info.get("epochs")},
        search=info, data=dict(meta or {}), versions=library_versions())
    return save_model(model, path, metadata)


def run_grid(estimator, name="custom", data_dir="data", lrs=None, momenta=None, folds=3,
             random_state=0, out_dir="cv", refit=False, model_path=None, scheduler=None,
             dask_workers=None, say=print) -> dict:
    """``kfkd grid``: load data, grid-search lr x momentum, print the ranking, write
    cv_results CSV, best JSON and heatmap PNG (and the refitted model with ``refit``)."""
    training, meta = load_data(estimator, data_dir, say)
    search = grid_search(estimator, training.X, training.y,
                         lrs=DEFAULT_LRS if lrs is None else lrs,
                         momenta=DEFAULT_MOMENTA if momenta is None else momenta,
                         folds=folds, random_state=random_state, scheduler=scheduler,
                         dask_workers=dask_workers, refit=refit, name=name, say=say)
    say(format_grid(search))
    csv_path, json_path, png_path = write_grid(search, out_dir, meta)
    say(f"cv_results: {csv_path}; best: {json_path}; heatmap: {png_path}")
    summary = {"best_params": search.best_params_, "csv": str(csv_path),
               "json": str(json_path), "png": str(png_path)}
    if refit:
        with_layout(search.best_estimator_, training.y)
        model, _ = save_refit(search, model_path, meta)
        summary["model"] = str(model)
        say(f"best refitted on all {len(training.X)} rows; model saved to {model}")
    return summary
