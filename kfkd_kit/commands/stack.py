"""`kfkd stack`: cv runs' out-of-fold predictions -> one stacked model.

Reads each run's ``cv/oof-<run>.*`` files (search/oof.py), checks that the runs share
their data and folds, prints the nested-CV RMSE of each meta-model against each member's
out-of-fold RMSE, and saves the best as one estimator (meta/stack.py ``StackedKeypoints``:
the members, each run's net trained again on every row or with ``--members folds`` each
run's kept fold models, and the meta-model) with its JSON record; submit, report and
predict take it like any model. The work is search/stacking.py's.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from . import _options
from ._shared import with_layout

DEFAULT_MODEL = "models/stack.joblib"


def add_parser(sub):
    p = _options.command_parser(sub, "stack")
    _options.add_data(p, help="the folder of Kaggle's files the runs cross-validated on")
    p.add_argument("--runs", type=run_list, required=True, metavar="RUN,RUN,...",
                   help="the cv runs, comma-separated: cv/<net>-<time> (or their "
                        "cv/oof-<net>-<time>.json), each from make cv KEEP_MODELS=1 with "
                        "the same FOLDS and SEED (default: none, they are required)")
    _options.add_model(p, "where the stacked model goes (.joblib or .skops)",
                       default=DEFAULT_MODEL)
    p.add_argument("--members", choices=("refit", "folds"), default="refit",
                   help="refit: each run's net trained once more on every row (about "
                        "1/(FOLDS-1) of its cv run's training again); folds: each run's kept "
                        "fold models, the models the meta-model learnt from, nothing trained "
                        "(default: refit, which measured better; docs/RESULTS.md)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="refit the members on this Dask scheduler (default: none)")
    p.add_argument("--dask-workers", type=int, default=None, metavar="N",
                   help="refit the members on a local Dask cluster of N workers "
                        "(default: none, one after another here)")
    p.set_defaults(func=run)


def run_list(text):
    runs = [part.strip() for part in text.split(",") if part.strip()]
    if not runs:
        raise argparse.ArgumentTypeError(f"expected cv runs, comma-separated, got {text!r}")
    return runs


def run(args):
    run_stack(args.runs, data_dir=args.data, model_path=args.model, members=args.members,
              scheduler=args.scheduler, dask_workers=args.dask_workers)


def run_stack(runs, data_dir="data", model_path=DEFAULT_MODEL, members="refit",
              scheduler=None, dask_workers=None, say=print) -> dict:
    """``kfkd stack``: read and check the runs and their fold models, score the stacks,
    save the best over ``members`` ("refit" or "folds", search/stacking.py). Returns the
    summary (the scores, the model's path)."""
    from .. import data
    from ..data.splits import image_groups
    from ..search.oof import read_run
    from ..search.stacking import (MEMBERS, check_runs, load_members, refit_members,
                                   score_stacks, stack_model)
    from ..utils.modelfile import model_record, save_model
    from ..utils.provenance import library_versions
    from ..meta.stack import METHODS

    model_path = Path(model_path)
    if members not in MEMBERS:
        raise ValueError(f"members {members!r}: expected one of {', '.join(MEMBERS)}")
    if model_path.suffix == ".json":
        raise ValueError(f"{model_path}: a model file is .joblib or .skops; its JSON record "
                         "is written beside it")
    oof_runs = [read_run(name) for name in runs]
    training = data.load_training(data.resolve_data_dir(data_dir, say))
    check_runs(oof_runs, training)
    fitted = load_members(oof_runs)           # before the scoring: a missing one fails fast
    say(f"stacking {len(oof_runs)} runs on {len(training.X)} rows of {training.source} over "
        f"their {int(oof_runs[0].record['folds'])} shared folds")
    scores = score_stacks(oof_runs, training.y, groups=image_groups(training.X), say=say)
    say(scores.table())
    if members == "refit":
        fitted = refit_members(fitted, training.X, training.y, scheduler, dask_workers, say)
    model = with_layout(stack_model(oof_runs, scores, fitted), training.y)
    record = model_record(
        "stack", "stack", scores.rmse_px, "cv", metrics={"methods": list(METHODS)},
        **scores.record(), folds=int(oof_runs[0].record["folds"]),
        seed=oof_runs[0].record.get("seed"), members_are=members,
        members=[{"run": run.name, "net": run.record.get("net"), "model": run.model["path"],
                  "params": run.record.get("params")} for run in oof_runs],
        data={"source": str(training.source), "fingerprint": training.fingerprint,
              "rows": len(training.X)},
        versions=library_versions())
    path, json_path = save_model(model, model_path, record)
    over = "the refitted members" if members == "refit" else "the fold models"
    say(f"stack ({scores.best} over {over}, nested-CV RMSE {scores.rmse_px:.4f} px of the "
        f"fold models) saved to {path}; "
        f"record: {json_path}")
    return {"model": str(path), "json": str(json_path), "method": scores.best,
            "members": members, "rmse_px": scores.rmse_px, "scores": scores.record()}
