"""Training one model and saving it: fit the estimator on the training rows (with
checkpoints to resume from, and Ctrl-C keeping the best so far), then write the model and
the JSON record beside it (what it scored on its validation rows, what a budget planned,
the precision and mirror axis it used, the data, the recipe). `kfkd train` calls
``fit_and_save``, then draws its figures."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import configs
from .meta.ensemble import SeedEnsemble
from .meta.labellers import LabellerBias
from .meta.pseudo import PseudoLabels
from .meta.specialists import Specialists
from .net.estimator import flip_axis_of, pixel_origin_of
from .net.metrics import masked_rmse_px
from .net.nested import histories, inner_net, net_prefix, nets
from .photo import framing
from .utils import provenance, runs
from .utils.modelfile import model_record, save_model


def data_record(training, estimator) -> dict:
    """What a JSON says about the training data: file, fingerprint, rows, and the rows the
    estimator trains on (all, or the complete ones: its own ``complete_only``)."""
    net = inner_net(estimator)
    return {"source": str(training.source), "fingerprint": training.fingerprint,
            "rows": len(training.X), "complete_only": bool(net.complete_only),
            "rows_trained": int(len(net.fit_rows(training.y))),
            "labelled_values": int(np.isfinite(training.y).sum())}


def with_options(estimator, data_dir, pseudo_labels=None, labeller_bias=False, budget=None,
                 say=print):
    """``estimator`` wrapped for train's options: ``pseudo_labels`` (a weight) trains it
    again on the test images in ``data_dir`` where its views agree (meta/pseudo.py; the
    ``budget`` is then for both fits, and ``estimator`` should hold none); ``labeller_bias``
    adds each labelling group's offset (meta/labellers.py)."""
    if pseudo_labels:
        from . import data
        test = data.load_test(data.resolve_data_dir(data_dir, lambda *_: None))
        estimator = PseudoLabels(estimator, unlabelled=test.X, weight=pseudo_labels,
                                 budget=budget)
        say(f"pseudo-labels: the {len(test.X)} test images of {test.source}, weight "
            f"{pseudo_labels:g}, where the first model's views agree within "
            f"{estimator.agree_px:g} px")
    if labeller_bias:
        estimator = LabellerBias(estimator)
    return estimator


def run_dir_of(model_path) -> Path:
    """Where a model's checkpoints live while it trains: ``<model>.run/``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".run")


def validation_rmse(model, X, y):
    """RMSE px over the labelled values of the rows the model held out for validation
    (the rows its epoch table reports on).

    For specialists, each one's own held-out rows and columns count (pooled), as each
    specialist splits the rows that label its group. None when nothing was held out.
    """
    if hasattr(model, "validation_rows_"):   # pseudo-labels: its second net's own split
        rows = model.validation_rows_
        return None if rows is None or not len(rows) else masked_rmse_px(y[rows], model.predict(X[rows]))
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


def fit_and_save(estimator, training, model_path, name="custom", description="", say=print,
                 params_file=None, params_given=None, recipe=None) -> tuple[dict, bool]:
    """Fit ``estimator`` (``configs.build(name, ...)``) on ``training`` (``data.load_training``)
    and save it with its JSON at ``model_path``. Returns (the JSON's record, whether Ctrl-C
    stopped the fit). ``params_file``/``params_given``: the --params JSON the estimator's
    parameters came from and what it held, recorded; ``recipe``: the recipe it follows and
    why (``recipes.Plan.record()``), recorded.

    A single net keeps checkpoints in ``<model>.run/`` while it trains (runs.py): the same
    call after the process died resumes there, and Ctrl-C stops it and saves the best
    model so far. An ensemble of seeds (``--ensemble N``) keeps one such folder per net in
    ``<model>.run/seed-S/`` and resumes each net; Ctrl-C stops it without a model.
    """
    record = data_record(training, estimator)
    rows = (f"{record['rows_trained']} complete rows of {record['rows']}"
            if record["complete_only"] else f"{record['rows']} rows")
    say(f"training {name}" + (f" ({description})" if description else "")
        + f" on {rows} of {training.source}")
    if isinstance(estimator, SeedEnsemble):
        say(_ensemble_line(estimator.plan()))
    model_path = Path(model_path)
    run_dir = run_dir_of(model_path)
    ensemble = isinstance(estimator, SeedEnsemble)
    resumable = not isinstance(estimator, (Specialists, SeedEnsemble, PseudoLabels, LabellerBias))
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
    # for framing faces in photos (predict)
    framing.attach_layout(estimator, training.y, pixel_origin_of(estimator))
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
        metadata["params_file"] = {"path": str(params_file), "params": params_given}
    if resumable:  # the saved model carries the net's own callbacks, not this run's
        estimator.set_params(**{net_prefix(estimator) + "callbacks": callbacks})
    save_model(estimator, model_path, metadata)
    if not interrupted and (resumable or ensemble):
        runs.finish(run_dir)      # the model is saved: its checkpoints are done with
    return metadata, bool(interrupted)


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
