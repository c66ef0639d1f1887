"""An Optuna search over net8's settings (`make tune`); resumable, and shared by workers.

The library behind ``kfkd tune`` (commands/tune.py), usable from a script: ``tune(estimator,
training, ...)`` runs the search on loaded training data and writes its outputs.

Search space: each dimension is a KeypointNet parameter, so the best trial's values go
straight into ``make train PARAMS=cv/tune-net8-best.json`` (``configs.apply_params``).
net8's own values in brackets.

==============  ==================================================  =====================
name            KeypointNet parameter(s)                            range
==============  ==================================================  =====================
width           ``module__width`` (channels: width ... 8 x width)   8-32, step 4 (16)
dropout         ``module__dropout`` (before the head)               0-0.4 (0.1)
rotate          ``iterator_train__rotate`` (degrees)                0-20 (12)
scale           ``iterator_train__scale`` (fraction)                0-0.15 (0.08)
shift           ``iterator_train__shift`` (pixels)                  0-6 (3)
weight_decay    ``optimizer__weight_decay`` (AdamW)                 0.001-0.3, log (0.05)
lr              ``lr`` and ``callbacks__lr_schedule__max_lr``       0.001-0.01, log (0.006)
                (the one-cycle's peak)
epochs          ``max_epochs``                                      40-120, step 20 (80)
==============  ==================================================  =====================

The peak lr stops at 0.01: in the first studies on real faces (docs/RESULTS.md) every
peak above 0.01 trained badly or was pruned, so trials spent there were wasted.

Trial 0 is the net as configured: its own value on every searched dimension (where that
lies in the range), not a draw. The study thus always holds the baseline the other trials
must beat, and TPE starts from a known good point. It is trial *number* 0, which the
storage hands to exactly one worker, so several workers never run it twice.

A setting given on the command line is held at that value and not searched: ``--epochs``
holds the epochs, ``--lr`` the peak lr. With a time budget (``--budget``, handed to
``tune`` as ``budget``) the budget, not the epochs, says how long each trial trains, so the
epochs are not searched either. Everything else is net8's own (or ``--params FILE``'s).

Objective (minimised): RMSE in pixels over the labelled values of held-out rows, with flip
test-time augmentation (``tta.flip_tta``), as Kaggle scores. The rows are
``splits.grouped_holdout(X, holdout, seed)``: the same split for every trial (and every
worker), identical images on one side; each trial trains on the other rows, and its net
draws its own validation split (net8's ``valid_fraction``) from those for its valid loss.

Trials: ``trials`` is the total. A run carries on until the study has that many finished
(complete or pruned) trials, so the same command resumes a study that was stopped, and a
larger number extends it. Failed trials (an error, Ctrl-C, a diverged net) do not count.
With several workers each stops once the study has ``trials`` finished trials; trials in
flight at that moment still finish, so it may end with a few more.

Storage: an SQLite file by default (``cv/tune-net8.db``, study "net8"); any Optuna RDB URL
(``sqlite:///...``, ``postgresql://...``, ``mysql://...``) or ``journal:PATH`` (Optuna's
JournalStorage on a JournalFileBackend: one append-only file, fine on NFS). Several
processes or machines given the same storage and study name share one study: Optuna hands
each trial to one worker. The study remembers its objective (net, data fingerprint,
hold-out, seed, search space and the net's other settings) and a run with other ones is
refused rather than mixed in. SQLite is for one process (Optuna's docs): parallel workers take
PostgreSQL (``postgresql://`` with psycopg2, requirements.txt's driver, where SQLAlchemy's
default psycopg 3 is missing) or a journal file. Workers that start together create the
database's tables once (the losers of PostgreSQL's CREATE TABLE race try again) and record
the objective once; a missing driver or a server that cannot be reached is one line naming
the URL without its password. The files a worker writes when it stops are rewritten until
the study did not change meanwhile, so the last ones written show every trial.

Sampler: TPE (``constant_liar``, so workers avoid what others are trying), seeded by
(seed, trial number): one worker's search is reproducible, and two workers never draw the
same random start. Pruning: optuna_integration's ``SkorchPruningCallback(trial,
"valid_loss")`` reports the net's valid loss every epoch; a trial whose best so far is
worse than the median of completed trials' at the same epoch is stopped (after 3 such
trials and 10 epochs). Only trials with the same epochs are compared: with net8's one-cycle
lr, epoch 20 of 40 is further along its schedule than epoch 20 of 120. ``--no-prune``
turns pruning off.

Outputs (``out_dir``, default cv/; ``tune-<study>...``), all written atomically: a Markdown
table of the trials (``.md``: number, state, RMSE, seconds, parameters), rewritten after
every trial; the best trial's parameters (``-best.json``, what ``--params`` takes); and
Optuna's optimisation history and parameter importances (``-history.png``,
``-importances.png``; the importances need two complete trials that differ). Progress: one
line per finished trial, and a last line naming the files.
"""
from __future__ import annotations

import json
import math
import os
import re
import socket
import warnings
from pathlib import Path

import numpy as np
from sklearn.base import clone

from ..data.splits import grouped_holdout
from ..meta.tta import flip_tta
from ..net.metrics import masked_rmse_px
from ..net.nested import inner_net, net_prefix
from ..net.settings import apply_params, settings as net_settings
from ..utils import runs
from .storage import open_storage
from .space import EPOCHS, SPACE, Dim, net_params, search_space, starting_point
from .study_outputs import best_trial, count_finished, write_outputs, write_quietly

DEFAULT_TRIALS = 20
DEFAULT_HOLDOUT = 0.2
PRUNE_AFTER_TRIALS = 3    # completed trials (with the same epochs) before any pruning
PRUNE_AFTER_EPOCHS = 10   # epochs a trial runs before it can be pruned
MAX_FAILURES = 3          # failed trials in a row (non-finite RMSE) that stop a worker


def holdout_rmse(model, X, y) -> float:
    """The objective: RMSE px over the labelled values of (X, y), predicted with flip TTA."""
    return masked_rmse_px(y, flip_tta(model).predict(X))


# --------------------------------------------------------------------------- sampler, pruner


def _sampler(seed, number, start=None):
    """TPE whose random draws are seeded by (seed, trial number); ``start`` ({name: value})
    fixes those dimensions instead (trial 0: the net as configured)."""
    import optuna
    state = int(np.random.SeedSequence([int(seed) % 2**32, int(number)]).generate_state(1)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=state, constant_liar=True)
        if start:
            sampler = optuna.samplers.PartialFixedSampler(start, sampler)
        return sampler


class _Peers:
    """A study seen through the trials with the given epochs only (for SameEpochsPruner)."""

    def __init__(self, study, epochs):
        self._study, self._epochs = study, epochs

    def get_trials(self, deepcopy=True, states=None):
        return [t for t in self._study.get_trials(deepcopy=deepcopy, states=states)
                if t.params.get(EPOCHS) == self._epochs]

    def __getattr__(self, name):
        return getattr(self._study, name)


def same_epochs_pruner(pruner):
    """``pruner`` (e.g. a MedianPruner) comparing a trial only with trials of the same
    epochs, where the epochs are searched: the valid loss at epoch k depends on where
    the one-cycle schedule of that many epochs stands."""
    import optuna

    class SameEpochsPruner(optuna.pruners.BasePruner):
        def __init__(self, inner):
            self.inner = inner

        def prune(self, study, trial):
            epochs = trial.params.get(EPOCHS)
            return self.inner.prune(study if epochs is None else _Peers(study, epochs), trial)

    return SameEpochsPruner(pruner)


def default_pruner():
    import optuna
    return same_epochs_pruner(optuna.pruners.MedianPruner(
        n_startup_trials=PRUNE_AFTER_TRIALS, n_warmup_steps=PRUNE_AFTER_EPOCHS))


# --------------------------------------------------------------------------- the search


def _comparable(value):
    return json.loads(json.dumps(value, default=str))


def _study_record(name, training, holdout, random_state, n_held, space, template) -> dict:
    """What makes trials comparable: it must be the same for every run of a study."""
    settings = {k: v for k, v in net_settings(template).items()
                if k not in ("device", "precision")}        # may differ between workers
    return _comparable({
        "net": name, "data": training.fingerprint, "rows": len(training.X),
        "holdout": holdout, "held_out_rows": n_held, "seed": random_state,
        "space": {dim.name: dim.describe() for dim in space}, "settings": settings})


def _differences(saved: dict, record: dict) -> list[str]:
    out = []
    for key in sorted(set(saved) | set(record)):
        old, new = saved.get(key), record.get(key)
        if key == "settings" and isinstance(old, dict) and isinstance(new, dict):
            out += [f"{k} {old.get(k)!r} (now {new.get(k)!r})"
                    for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        elif old != new:
            out.append(f"{key} {old!r} (now {new!r})")
    return out


def _check_study(study, record, shown):
    import sqlalchemy
    saved = study.user_attrs.get("kfkd")
    if saved is None:
        try:
            study.set_user_attr("kfkd", record)
            return
        except sqlalchemy.exc.IntegrityError:   # a worker started beside this one was first
            saved = study.user_attrs["kfkd"]
    changed = _differences(saved, record)
    if changed:
        raise ValueError(f"study {study.study_name!r} in {shown} was run with other settings or "
                         f"data: {'; '.join(changed[:4])}{'; ...' if len(changed) > 4 else ''}; "
                         "use the same ones, or another --study")


def _format_values(values: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in values.items())


def _stem(study_name) -> str:
    return "tune-" + re.sub(r"[^A-Za-z0-9._-]+", "_", study_name)


def require_optuna():
    """Optuna and optuna-integration imported, or a one-line ValueError saying what to install."""
    try:
        import optuna
        import optuna_integration  # noqa: F401  (SkorchPruningCallback)
    except ImportError as exc:
        raise ValueError(f"kfkd tune needs optuna and optuna-integration ({exc}): "
                         "pip install -r requirements.txt") from None
    return optuna


def check_holdout(holdout):
    if not 0 < holdout < 1:
        raise ValueError(f"--holdout must be a fraction between 0 and 1, got {holdout!r}")


def _trial_states(study):
    return [(t.number, t.state) for t in study.get_trials(deepcopy=False)]


def _write_final(write, plots, rounds=10):
    """The outputs as the study stands when this worker stops. Another worker may finish a
    trial while they are written and its own files land first: written again until the
    study did not change meanwhile, so the files last written show the whole study."""
    study = write["study"]
    for _ in range(rounds):
        seen = _trial_states(study)
        files, notes = write_outputs(**write, plots=plots)
        if _trial_states(study) == seen:
            break
    return files, notes


__all__ = ["tune", "same_epochs_pruner", "default_pruner", "holdout_rmse",
           "require_optuna", "check_holdout", "DEFAULT_TRIALS", "DEFAULT_HOLDOUT"]


def tune(estimator, training, name="net8", trials=DEFAULT_TRIALS, storage=None,
         study_name=None, holdout=DEFAULT_HOLDOUT, random_state=0, out_dir="cv", fixed=(),
         budget=None, pruner="median", plots=True, say=print) -> dict:
    """Search ``estimator``'s (net8's) SPACE with Optuna on ``training`` (data.TrainingData)
    until the study has ``trials`` finished trials; write the table, the best parameters
    and the plots.

    ``estimator``: the unfitted template (``configs.build``, with the command's settings),
    cloned for every trial, which then gets the trial's parameters. ``fixed``: the
    settings given on the command line ("epochs", "lr"), whose dimensions are not
    searched. ``budget``: the time per fit (seconds) the template was configured with, or
    None; with one, the epochs are not searched either. ``pruner``: "median" (the
    default: see the module docstring), None (off) or an Optuna pruner. ``plots``: False
    skips the PNGs. Returns {"study", "storage", "best", "files", ...}.
    """
    optuna = require_optuna()
    from optuna.trial import TrialState
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_holdout(holdout)
    study_name = study_name or name
    template = clone(estimator)
    net = inner_net(template)
    fixed = set(fixed)
    if budget is not None:   # a time budget: it, not epochs, decides how long a trial trains
        fixed.add("budget")
    space = search_space(fixed)
    X, y = training.X, training.y
    train_rows, held_rows = grouped_holdout(X, holdout, random_state)
    if not len(train_rows) or not np.isfinite(y[held_rows]).any():
        raise ValueError(f"{training.source}: {len(X)} rows leave no training rows or no labelled "
                         f"held-out value with --holdout {holdout:g}")
    record = _study_record(name, training, holdout, random_state, len(held_rows), space, template)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    storage, shown = open_storage(storage, out_dir / f"tune-{name}.db")

    if pruner == "median":
        pruner = default_pruner()
    prune = pruner is not None and net.resolved_train_split() is not None
    study = optuna.create_study(storage=storage, study_name=study_name, direction="minimize",
                                load_if_exists=True, sampler=_sampler(random_state, 0),
                                pruner=pruner if prune else optuna.pruners.NopPruner())
    _check_study(study, record, shown)

    def objective(trial):
        values = {dim.name: dim.suggest(trial) for dim in space}
        model = clone(template)
        apply_params(model, net_params(values, space), f"trial {trial.number}")
        if prune:
            from optuna_integration import SkorchPruningCallback
            callbacks = list(inner_net(model).callbacks or [])
            model.set_params(**{net_prefix(model) + "callbacks": callbacks + [
                ("prune", SkorchPruningCallback(trial, "valid_loss"))]})
        with runs.stop_on_ctrl_c() as interrupted:   # skorch ends a fit quietly on Ctrl-C
            model.fit(X[train_rows], y[train_rows])
        if interrupted:
            raise KeyboardInterrupt
        return holdout_rmse(model, X[held_rows], y[held_rows])

    start = starting_point(template, space)
    stem = _stem(study_name)
    write = dict(study=study, record=record, shown=shown, out_dir=out_dir, stem=stem, space=space)
    done = count_finished(study)
    held = fixed & {"epochs", "lr", "budget"}
    say(f"tune {name}: study {study_name!r} in {shown}, {done} of {trials} trials finished; "
        f"searching {', '.join(dim.name for dim in space)}"
        + (f" (held by the command line: {', '.join(sorted(held))})" if held else ""))
    say(f"objective: RMSE px with flip TTA on {len(held_rows)} held-out rows (seed {random_state}) "
        f"of {training.source}; each trial trains on {len(train_rows)}"
        + ("" if prune else "; no pruning"))
    if done >= trials:
        say(f"the study already has {done} finished trials (--trials is the total: raise it "
            "to run more)")
    worker = f"{socket.gethostname()}:{os.getpid()}"
    failures = 0
    while count_finished(study) < trials:
        trial = study.ask()
        # before the first suggest; trial 0 is the net as configured
        study.sampler = _sampler(random_state, trial.number, start if trial.number == 0 else None)
        trial.set_user_attr("worker", worker)
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            frozen = study.tell(trial, state=TrialState.PRUNED)
            outcome = f"pruned after epoch {frozen.last_step + 1}"
        except BaseException:   # an error or Ctrl-C: the trial failed; what finished is kept
            study.tell(trial, state=TrialState.FAIL)
            write_quietly(write)
            raise
        else:
            finite = math.isfinite(value)
            frozen = study.tell(trial, value) if finite else study.tell(trial, state=TrialState.FAIL)
            outcome = f"{value:.4f} px" if finite else f"failed: RMSE {value} (diverged)"
        failures = 0 if frozen.state != TrialState.FAIL else failures + 1
        seconds = frozen.duration.total_seconds() if frozen.duration else float("nan")
        say(f"trial {frozen.number} [{count_finished(study)}/{trials}]: {outcome} in "
            f"{seconds:.1f} s ({_format_values(frozen.params)})")
        write_outputs(**write)
        if failures >= MAX_FAILURES:
            raise ValueError(f"{failures} trials in a row gave no finite RMSE (the nets diverged); "
                             "stopping: try a lower --lr or check the data")

    files, notes = _write_final(write, plots)
    for note in notes:
        say(f"NOTE: {note}")
    best = best_trial(study)
    if best is not None:
        say(f"best: trial {best.number}, {best.value:.4f} px ({_format_values(best.params)})")
    say("files: " + ", ".join(str(p) for p in files.values()))
    return {"study": study_name, "storage": shown, "finished": count_finished(study),
            "best": None if best is None else {"trial": best.number, "rmse_px": best.value,
                                               "params": net_params(best.params, space)},
            "files": {k: str(v) for k, v in files.items()}}
