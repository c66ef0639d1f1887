"""`kfkd cv`: shuffled, seeded, grouped k-fold cross-validation of a named net, or of the
recipe `kfkd train` would follow with the same options (recipes.py: with BUDGET=, per fold).

Writes ``cv/<net>-<UTC time>.csv`` (one row per fold) and a JSON summary, and always the
run's out-of-fold predictions beside them (``cv/oof-<net>-<UTC time>.csv``, ``-test.csv``
and ``.json``, search/oof.py) for `kfkd stack`; with ``--keep-models`` the k fold models
are saved as one ``ensemble.FoldEnsemble`` that submit and stack take. The machinery is
``selection.cross_validate_net`` (plain scikit-learn).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..utils.atomic import create_unique, utc_stamp, write_json
from ..utils.modelfile import model_record, save_model
from ..utils.provenance import library_versions
from ..search.oof import oof_paths, oof_record, oof_tables
from ..search.selection import CVResult, cross_validate_net
from . import _options
from ._shared import load_data, with_layout


def add_parser(sub):
    p = _options.command_parser(sub, "cv")
    _options.add_common(p)
    _options.add_selection(p, folds=5)
    _options.add_recipe(p)
    p.add_argument("--keep-models", action="store_true",
                   help="save the k fold models as one ensemble (usable by submit)")
    _options.add_model(p, "where the kept ensemble goes (default: "
                          "models/<net>-cv<k>.ensemble.joblib)", default=None)
    p.set_defaults(func=run)


def run(args):
    # each fold trains what `kfkd train` would with the same options: the budget's recipe
    plan = _options.recipe_plan(args)
    print(plan.why.replace("recipe ", "each fold: recipe ", 1))
    run_cv(_options.recipe_estimator(args, plan, budget=args.budget),
           keep_models=args.keep_models, **_options.selection_kwargs(args))


def write_cv(result: CVResult, out_dir="cv", meta=None, when=None) -> tuple[Path, Path]:
    """``<out_dir>/<net>-<UTC time>.csv`` (one row per fold) and ``.json`` (summary with
    ``meta``, e.g. the data's source and fingerprint, and library versions). Atomic. With
    out-of-fold predictions, the JSON names the file ``write_oof`` writes for them."""
    import pandas as pd
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = create_unique(out_dir / f"{result.net}-{utc_stamp(when)}.csv",
                             pd.DataFrame(result.rows).to_csv(index=False))
    stem = csv_path.stem                  # the CSV's new name gives the run its own stem
    payload = dict(result.summary(), created_utc=utc_stamp(when), csv=str(csv_path),
                   data=dict(meta or {}), versions=library_versions())
    if result.oof is not None:
        payload.update(oof=str(oof_paths(out_dir, stem)["json"]),
                       oof_rmse_px=result.oof_rmse_px)
    json_path = write_json(out_dir / f"{stem}.json", payload)
    return csv_path, json_path


def write_oof(result: CVResult, out_dir, run, meta=None, test=None, model=None,
              when=None) -> dict:
    """The run's out-of-fold predictions (search/oof.py): ``oof-<run>.csv``, with test
    images ``oof-<run>-test.csv``, and last ``oof-<run>.json``, which names them (and
    ``model``, the kept fold models' {"path", "sha256"}). Each written atomically.
    ``test``: the TestData whose images ``result.test_predictions`` are. Returns the paths."""
    from ..utils.atomic import write_csv
    paths = oof_paths(out_dir, run)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    train, test_table = oof_tables(result, None if test is None else test.image_ids)
    written = {"train": write_csv(paths["train"], train)}
    if test_table is not None:
        written["test"] = write_csv(paths["test"], test_table)
    test_record = None if test is None else {
        "source": str(test.source), "fingerprint": test.fingerprint, "images": len(test.X)}
    record = oof_record(result, run, data=meta, test=test_record, model=model,
                        created_utc=utc_stamp(when), versions=library_versions())
    written["json"] = write_json(paths["json"], record)
    return written


def _test_images(training, say):
    """The test images beside the training file (TestData), or None when there are none."""
    from .. import data
    found = data.find_file(Path(training.source).parent, "test")
    if found is None:
        say("no test file beside the training file: out-of-fold predictions of training "
            "rows only")
        return None
    return data.load_test(found)


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
    test = _test_images(training, say)
    result = cross_validate_net(estimator, training.X, training.y, folds=folds,
                                random_state=random_state,
                                keep_models=keep_models, scheduler=scheduler,
                                dask_workers=dask_workers, name=name, say=say,
                                X_test=None if test is None else test.X)
    say(result.table())
    say(f"out-of-fold RMSE: {result.oof_rmse_px:.3f} px (all {result.n_rows} rows' labelled "
        "values, the folds pooled)")
    csv_path, json_path = write_cv(result, out_dir, meta)
    summary = dict(result.summary(), csv=str(csv_path), json=str(json_path))
    say(f"per-fold table: {csv_path}; summary: {json_path}")
    kept = None
    if keep_models:
        with_layout(result.ensemble, training.y)
        model, record = save_ensemble(result, model_path, meta)
        summary["model"] = str(model)
        kept = {"path": str(model),
                "sha256": json.loads(record.read_text(encoding="utf-8"))["model_file"]["sha256"]}
        say(f"fold ensemble ({folds} models) saved to {model}")
    oof = write_oof(result, out_dir, csv_path.stem, meta, test, kept)
    summary["oof"] = {key: str(path) for key, path in oof.items()}
    say(f"out-of-fold predictions: {oof['train']}"
        + (f", test images: {oof['test']}" if "test" in oof else "") + f"; run: {oof['json']}")
    return summary
