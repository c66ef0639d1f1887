"""Training: data -> fitted estimator -> models/<net>.joblib + JSON + PNGs."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .. import configs, data, recipes
from ..photo import framing
from ..utils import provenance, runs
from . import _plots as plots
from ..net.metrics import masked_rmse_px
from ..net.estimator import flip_axis_of
from ..net.nested import histories, inner_net, net_prefix, nets
from ..utils.modelfile import model_record, save_model
from ..meta.ensemble import SeedEnsemble
from ..meta.specialists import Specialists
from . import _options
from ._shared import data_record


def validation_rmse(model, X, y):
    """RMSE px over the labelled values of the rows the model held out for validation
    (the rows its epoch table reports on).

    For specialists, each one's own held-out rows and columns count (pooled), as each
    specialist splits the rows that label its group. None when nothing was held out.
    """
    parts = model.models_.items() if isinstance(model, Specialists) else [(None, model)]
    true, predicted = [], []
    for name, pipeline in parts:
        rows = np.arange(len(X)) if name is None else model.rows_[name]
        target = y[rows] if name is None else y[np.ix_(rows, model.columns_[name])]
        held_out = inner_net(pipeline).validation_rows(X[rows], target)
        if held_out is None:
            return None
        true.append(target[held_out].ravel())
        predicted.append(pipeline.predict(X[rows[held_out]]).ravel())
    return masked_rmse_px(np.concatenate(true), np.concatenate(predicted))


def precisions_used(model):
    """What the fitted nets computed in ("bf16", "fp32", ...): one value, or a dict of them."""
    used = {name: getattr(net, "precision_", None) for name, net in nets(model).items()}
    values = set(used.values())
    return values.pop() if len(values) == 1 else used


def _mean_of(model, attribute):
    """The mean of a fitted attribute over the nets that have it (None if none does)."""
    values = [getattr(net, attribute) for net in nets(model).values()
              if hasattr(net, attribute)]
    return float(np.mean(values)) if values else None


def budget_plans(model):
    """What a time budget measured and chose (budget, epochs, seconds per epoch timed and
    seconds per epoch run): one record, a dict of them, or None without a budget."""
    plans = {}
    for name, net in nets(model).items():
        plan = getattr(net, "budget_plan_", None)
        if plan is not None:
            durations = [row["dur"] for row in net.history]
            plans[name] = dict(plan, epochs_run=len(net.history),
                               seconds_per_epoch_run=round(float(np.mean(durations)), 3))
    if not plans:
        return None
    return next(iter(plans.values())) if len(plans) == 1 else plans


def train(estimator, data_dir="data", model_path=None, name="custom", description="",
          say=print, params_file=None, recipe=None) -> dict:
    """Fit ``estimator`` (``configs.build(name, ...)``) on the training data in
    ``data_dir``; save model, JSON and PNGs. Returns the metadata dict.
    ``params_file``: the --params JSON the estimator's parameters came from, recorded;
    ``recipe``: the recipe it follows and why (``recipes.Plan.record()``), recorded.

    A single net keeps checkpoints in ``<model>.run/`` while it trains (runs.py): the same
    call after the process died resumes there, and Ctrl-C stops it and saves the best
    model so far. An ensemble of seeds (``--ensemble N``) keeps one such folder per net in
    ``<model>.run/seed-S/`` and resumes each net; Ctrl-C stops it without a model.
    """
    given = configs.load_params(params_file) if params_file else None  # read now, not after hours
    folder = data.resolve_data_dir(data_dir, say)
    training = data.load_training(folder)
    record = data_record(training, estimator)
    rows = (f"{record['rows_trained']} complete rows of {record['rows']}"
            if record["complete_only"] else f"{record['rows']} rows")
    say(f"training {name}" + (f" ({description})" if description else "")
        + f" on {rows} of {training.source}")
    if isinstance(estimator, SeedEnsemble):
        say(_ensemble_line(estimator.plan()))
    model_path = Path(model_path or f"models/{name}.joblib")
    run_dir = model_path.with_name(model_path.name + ".run")
    ensemble = isinstance(estimator, SeedEnsemble)
    resumable = not isinstance(estimator, (Specialists, SeedEnsemble))
    if resumable:
        callbacks = _keep_run(estimator, name, training, run_dir, say)
    start = time.perf_counter()
    with runs.stop_on_ctrl_c() as interrupted:
        if ensemble:
            estimator.fit(training.X, training.y, run_dir=run_dir)
        else:
            estimator.fit(training.X, training.y)
    seconds = time.perf_counter() - start
    if interrupted and resumable:
        _best_so_far(estimator, run_dir, say)
    elif interrupted:
        if ensemble:
            say(f"interrupted: no model saved; run the same command to resume each net "
                f"from its checkpoint in {run_dir}")
        raise KeyboardInterrupt
    rmse = validation_rmse(estimator, training.X, training.y)
    framing.attach_layout(estimator, training.y)   # for framing faces in photos (predict)
    nets = histories(estimator)
    first = next(iter(nets.values()))
    metadata = model_record(
        name, "train", rmse, "validation", description=description,
        metrics={
            "valid_rmse_px": rmse,
            "epochs_run": {n: len(h) for n, h in nets.items()} if len(nets) > 1 else len(first),
            "final_train_loss": first[-1, "train_loss"],
            "train_seconds": round(seconds, 3),
            "interrupted": bool(interrupted),
            "budget": budget_plans(estimator),
        })
    params = configs.settings(estimator)
    if isinstance(estimator, SeedEnsemble):
        metadata["ensemble"] = estimator.plan_
        params["budget_s"] = estimator.budget   # the ensemble's, shared out among its nets
    if recipe is not None:
        metadata["recipe"] = recipe
    metadata |= {
        "params": dict(params, precision_used=precisions_used(estimator),
                       flip_axis_used=flip_axis_of(estimator),
                       flip_axis_from_images=_mean_of(estimator, "flip_axis_images_")),
        "data": record,
        "mean_keypoints": [round(float(v), 4) for v in framing.layout_of(estimator)],
        "versions": provenance.library_versions(),
    }
    if params_file:
        metadata["params_file"] = {"path": str(params_file), "params": given}
    if resumable:  # the saved model carries the net's own callbacks, not this run's
        estimator.set_params(**{net_prefix(estimator) + "callbacks": callbacks})
    save_model(estimator, model_path, metadata)
    figures = write_figures(estimator, folder, model_path, title=name)
    metadata["figures"] = [str(p) for p in figures]
    say(f"figures: {', '.join(metadata['figures'])}")
    shown = "n/a (no validation split)" if rmse is None else f"{rmse:.3f} px"
    if interrupted:
        say(f"interrupted: the best model so far (valid RMSE {shown}) is saved to {model_path}; "
            f"run the same command to resume from {run_dir}")
    else:
        if resumable or ensemble:
            runs.finish(run_dir)
        say(f"valid RMSE {shown}; model saved to {model_path}")
    return metadata


def _ensemble_line(plan) -> str:
    seeds = ", ".join(map(str, plan["seeds"]))
    at_once = ("one at a time" if plan["jobs"] == 1 else
               f"{plan['jobs']} at a time, in worker processes of {plan['threads_per_job']} "
               f"thread{'s' if plan['threads_per_job'] > 1 else ''} each")
    budget = ("" if plan["member_budget_s"] is None else
              f", a budget of {plan['member_budget_s']:.0f} s each")
    heads = "" if not plan.get("heads") else f", heads {', '.join(plan['heads'])}"
    return (f"an ensemble of {len(plan['seeds'])} nets (seeds {seeds}{heads}), {at_once}{budget}; "
            "it predicts their mean")


def _keep_run(estimator, name, training, run_dir, say) -> list:
    """Give the net this run's checkpoint callbacks; returns its own callbacks."""
    net = inner_net(estimator)
    record = {"net": name, "settings": configs.settings(estimator),
              "data": training.fingerprint}
    epoch = runs.prepare(run_dir, record, say)
    if epoch:
        say(f"resuming from epoch {epoch} of {net.max_epochs} (checkpoint in {run_dir})")
    first, last = runs.checkpoint_callbacks(run_dir)
    callbacks = list(net.callbacks)
    estimator.set_params(**{net_prefix(estimator) + "callbacks": first + callbacks + last})
    return callbacks


def _best_so_far(estimator, run_dir, say):
    """After Ctrl-C: the weights (and history) of the best epoch checkpointed so far."""
    net = inner_net(estimator)
    best = runs.best_state(run_dir)
    if best is not None:
        net.load_params(checkpoint=best)
    say(f"interrupted after {len(net.history)} epochs" if best is None
        else f"interrupted; keeping the best epoch so far, epoch {len(net.history)}")


def write_figures(model, data_folder, model_path, title="") -> list[Path]:
    model_path = Path(model_path)
    stem = model_path.with_suffix("")
    figures = [plots.learning_curves(histories(model), f"{stem}-learning-curves.png", title)]
    if data.find_file(data_folder, "test") is not None:
        test = data.load_test(data_folder)
        sample = test.X[:16]
        figures.append(plots.prediction_grid(sample, model.predict(sample),
                                             f"{stem}-test-predictions.png",
                                             f"{title}: test predictions"))
    return figures


def add_parser(sub):
    p = _options.command_parser(sub, "train")
    _options.add_common(p, verbose=1)
    _options.add_model(p, "where the model goes (default: models/<net>.joblib)", default=None)
    p.add_argument("--quiet", dest="verbose", action="store_const", const=0, help="no per-epoch table")
    p.add_argument("--ensemble", "--models", dest="models", type=_options.positive_int,
                   default=None, metavar="N",
                   help="train N nets (seeds SEED, SEED+1, ...) and save their mean as one model; "
                        "a --budget is for all of them; the budget's recipe (kfkd_kit/recipes.py) "
                        "trains net8 on a CPU of two or more cores with native bf16 as 2 nets "
                        "from 10 minutes, 3 from 45 (default: the recipe's, else 1)")
    p.add_argument("--jobs", type=int, default=None, metavar="J",
                   help="with --ensemble: nets trained at a time, each in its own process with its "
                        "share of the cores; -1: one per core, at most N (default: the "
                        "recipe's, else -1)")
    p.add_argument("--heads", default=None, metavar="H1,H2",
                   help="net8's head, dense or softargmax; with --ensemble N, the nets' heads in "
                        "turn (dense,softargmax: the nets differ in head as well as seed, which "
                        "averages better) (default: the recipe's, else dense)")
    p.set_defaults(func=run)


def run(args):
    heads = args.heads.split(",") if args.heads else None
    if heads and args.net != "net8":
        raise ValueError(f"--heads: only net8 has a choice of heads, not {args.net}")
    if heads and len(heads) > 1 and (args.models or 1) == 1:
        raise ValueError(f"--heads {args.heads}: one net has one head (--ensemble N trains "
                         "N nets, their heads in turn)")
    if args.models and args.models > 1 and args.net == "specialists":
        raise ValueError("--ensemble N trains N copies of one net; specialists are six nets already")
    plan = recipes.plan(args.net, args.budget, recipes.Machine.this_one(args.device, args.precision),
                        models=args.models, heads=heads, jobs=args.jobs,
                        valid_fraction=args.valid_fraction)
    print(plan.why)
    if plan.models == 1:     # one net: a plain pipeline with the whole budget
        estimator = _options.estimator(args, valid_fraction=plan.valid_fraction,
                                       head=plan.heads[0] if plan.heads else None)
    else:                    # the ensemble shares the budget out among its nets
        estimator = SeedEnsemble(
            _options.estimator(args, valid_fraction=plan.valid_fraction, budget=None),
            seeds=plan.models, n_jobs=plan.jobs, heads=list(plan.heads) if plan.heads else None,
            budget=args.budget)
    metadata = train(estimator, data_dir=args.data, model_path=args.model,
                     name=args.net, description=configs.get_config(args.net).description,
                     params_file=args.params, recipe=plan.record())
    return 130 if metadata["metrics"]["interrupted"] else 0  # Ctrl-C: saved, but not finished
