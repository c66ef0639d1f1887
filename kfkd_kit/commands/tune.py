"""`make tune`: an Optuna search over net8's settings; resumable, and shared by workers.

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
holds the epochs, ``--lr`` the peak lr. With a time budget (``--budget``: the net's
``budget`` parameter) the budget, not the epochs, says how long each trial trains, so the
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
refused rather than mixed in.

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
import sys
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sklearn.base import clone

from .. import configs, data
from ..utils import runs
from ..utils.atomic import atomic_write, utc_stamp, write_json
from ..net.metrics import masked_rmse_px
from ..data.splits import grouped_holdout
from ..meta.tta import flip_tta
from . import _options

DEFAULT_TRIALS = 20
DEFAULT_HOLDOUT = 0.2
PRUNE_AFTER_TRIALS = 3    # completed trials (with the same epochs) before any pruning
PRUNE_AFTER_EPOCHS = 10   # epochs a trial runs before it can be pruned
MAX_FAILURES = 3          # failed trials in a row (non-finite RMSE) that stop a worker
EPOCHS = "epochs"


@dataclass(frozen=True)
class Dim:
    """One dimension of the search: Optuna's name for it, the KeypointNet parameter(s)
    it sets, its range, and the settings (configs.OVERRIDES names) that hold it fixed."""
    name: str
    key: str
    low: float
    high: float
    integer: bool = False
    step: float | None = None
    log: bool = False
    also: tuple = ()
    held_by: tuple = ()

    def suggest(self, trial):
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> str:
        text = f"{self.low:g}-{self.high:g}"
        return text + (f" step {self.step:g}" if self.step else "") + (" log" if self.log else "")


SPACE = (
    Dim("width", "module__width", 8, 32, integer=True, step=4),
    Dim("dropout", "module__dropout", 0.0, 0.4),
    Dim("rotate", "iterator_train__rotate", 0.0, 20.0),
    Dim("scale", "iterator_train__scale", 0.0, 0.15),
    Dim("shift", "iterator_train__shift", 0.0, 6.0),
    Dim("weight_decay", "optimizer__weight_decay", 1e-3, 0.3, log=True),
    Dim("lr", "lr", 1e-3, 1e-2, log=True, also=("callbacks__lr_schedule__max_lr",), held_by=("lr",)),
    Dim(EPOCHS, "max_epochs", 40, 120, integer=True, step=20, held_by=("epochs", "budget")),
)


def search_space(fixed=()) -> tuple[Dim, ...]:
    """SPACE less the dimensions that the given settings (``fixed``: "epochs", "lr",
    "budget") hold."""
    fixed = set(fixed)
    return tuple(dim for dim in SPACE if not fixed & set(dim.held_by))


def net_params(values: dict, space=SPACE) -> dict:
    """Optuna's values by name -> the KeypointNet parameters they set (what --params takes)."""
    params = {}
    for dim in space:
        if dim.name in values:
            for key in (dim.key,) + dim.also:
                params[key] = values[dim.name]
    return params


def holdout_rmse(model, X, y) -> float:
    """The objective: RMSE px over the labelled values of (X, y), predicted with flip TTA."""
    return masked_rmse_px(y, flip_tta(model).predict(X))


# --------------------------------------------------------------------------- storage


def open_storage(url=None, default=Path("cv/tune-net8.db")):
    """(Optuna storage, its URL as shown) for ``--storage``: None (an SQLite file at
    ``default``), an RDB URL, or ``journal:PATH``. Anything else is a one-line ValueError."""
    import optuna
    if url is None:
        default = Path(default)
        default.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{default}"
    url = str(url)
    if url.startswith("journal:"):
        path = url[len("journal:"):]
        if not path.strip():
            raise ValueError("--storage journal:PATH needs the journal file's path")
        from optuna.storages.journal import JournalFileBackend, JournalStorage
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(path)), url
        except OSError as exc:
            raise ValueError(f"--storage {url}: {exc}") from None
    unknown = (f"--storage {url!r}: not a storage; give an RDB URL (sqlite:///cv/tune.db, "
               "postgresql://user@host/db, ...) or journal:PATH")
    if "://" not in url:
        raise ValueError(unknown)
    import sqlalchemy
    try:
        parsed = sqlalchemy.engine.make_url(url)
        shown = parsed.render_as_string(hide_password=True)
        parsed.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError:
        raise ValueError(unknown) from None
    except sqlalchemy.exc.ArgumentError:
        raise ValueError(unknown) from None
    except ImportError as exc:
        raise ValueError(f"--storage {url.split(':', 1)[0]}: its database driver is not "
                         f"installed ({exc})") from None
    try:
        return optuna.storages.RDBStorage(url), shown
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"--storage {shown}: cannot open it ({first})") from None


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


def starting_point(template, space) -> dict:
    """{dimension: the template net's own value} for trial 0, for each dimension of
    ``space`` whose value lies in its range (and on its step); the rest are drawn."""
    params = configs.inner_net(template).get_params()
    start = {}
    for dim in space:
        value = params.get(dim.key)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            continue
        steps = (value - dim.low) / dim.step if dim.step else 0.0
        if (dim.low <= value <= dim.high and abs(steps - round(steps)) < 1e-9
                and (not dim.integer or float(value).is_integer())):
            start[dim.name] = int(value) if dim.integer else float(value)
    return start


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


def _finished_states():
    from optuna.trial import TrialState
    return (TrialState.COMPLETE, TrialState.PRUNED)


def _count_finished(study) -> int:
    return len(study.get_trials(deepcopy=False, states=_finished_states()))


def _comparable(value):
    return json.loads(json.dumps(value, default=str))


def _study_record(name, training, holdout, random_state, n_held, space, template) -> dict:
    """What makes trials comparable: it must be the same for every run of a study."""
    settings = {k: v for k, v in configs.settings(template).items()
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
    saved = study.user_attrs.get("kfkd")
    if saved is None:
        study.set_user_attr("kfkd", record)
        return
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


def run_tune(estimator, name="net8", data_dir="data", trials=DEFAULT_TRIALS, storage=None,
             study_name=None, holdout=DEFAULT_HOLDOUT, random_state=0, out_dir="cv", fixed=(),
             pruner="median", plots=True, say=print) -> dict:
    """``kfkd tune``: search ``estimator``'s (net8's) SPACE with Optuna until the study has
    ``trials`` finished trials; write the table, the best parameters and the plots.

    ``estimator``: the unfitted template (``configs.build``, with the command's settings),
    cloned for every trial, which then gets the trial's parameters. ``fixed``: the
    settings given on the command line ("epochs", "lr", "budget"), whose dimensions are
    not searched (a template with a ``budget`` holds the epochs too). ``pruner``:
    "median" (the default: see the module docstring), None (off) or an Optuna pruner.
    ``plots``: False skips the PNGs. Returns {"study", "storage", "best", "files", ...}.
    """
    try:
        import optuna
        import optuna_integration  # noqa: F401  (SkorchPruningCallback)
    except ImportError as exc:
        raise ValueError(f"kfkd tune needs optuna and optuna-integration ({exc}): "
                         "pip install -r requirements.txt") from None
    from optuna.trial import TrialState
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if isinstance(trials, bool) or not isinstance(trials, (int, np.integer)) or trials < 1:
        raise ValueError(f"--trials must be a positive integer, got {trials!r}")
    if not 0 < holdout < 1:
        raise ValueError(f"--holdout must be a fraction between 0 and 1, got {holdout!r}")
    study_name = study_name or name
    template = clone(estimator)
    net = configs.inner_net(template)
    fixed = set(fixed)
    if getattr(net, "budget", None) is not None:   # a time budget: it, not epochs, decides
        fixed.add("budget")
    space = search_space(fixed)
    folder = data.resolve_data_dir(data_dir, say)
    training = data.load_training(folder)
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
        configs.apply_params(model, net_params(values, space), f"trial {trial.number}")
        if prune:
            from optuna_integration import SkorchPruningCallback
            callbacks = list(configs.inner_net(model).callbacks or [])
            model.set_params(**{configs.net_prefix(model) + "callbacks": callbacks + [
                ("prune", SkorchPruningCallback(trial, "valid_loss"))]})
        with runs.stop_on_ctrl_c() as interrupted:   # skorch ends a fit quietly on Ctrl-C
            model.fit(X[train_rows], y[train_rows])
        if interrupted:
            raise KeyboardInterrupt
        return holdout_rmse(model, X[held_rows], y[held_rows])

    start = starting_point(template, space)
    stem = _stem(study_name)
    write = dict(study=study, record=record, shown=shown, out_dir=out_dir, stem=stem, space=space)
    done = _count_finished(study)
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
    while _count_finished(study) < trials:
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
            _write_quietly(write)
            raise
        else:
            finite = math.isfinite(value)
            frozen = study.tell(trial, value) if finite else study.tell(trial, state=TrialState.FAIL)
            outcome = f"{value:.4f} px" if finite else f"failed: RMSE {value} (diverged)"
        failures = 0 if frozen.state != TrialState.FAIL else failures + 1
        seconds = frozen.duration.total_seconds() if frozen.duration else float("nan")
        say(f"trial {frozen.number} [{_count_finished(study)}/{trials}]: {outcome} in "
            f"{seconds:.1f} s ({_format_values(frozen.params)})")
        write_outputs(**write)
        if failures >= MAX_FAILURES:
            raise ValueError(f"{failures} trials in a row gave no finite RMSE (the nets diverged); "
                             "stopping: try a lower --lr or check the data")

    files, notes = write_outputs(**write, plots=plots)
    for note in notes:
        say(f"NOTE: {note}")
    best = _best(study)
    if best is not None:
        say(f"best: trial {best.number}, {best.value:.4f} px ({_format_values(best.params)})")
    say("files: " + ", ".join(str(p) for p in files.values()))
    return {"study": study_name, "storage": shown, "finished": _count_finished(study),
            "best": None if best is None else {"trial": best.number, "rmse_px": best.value,
                                               "params": net_params(best.params, space)},
            "files": {k: str(v) for k, v in files.items()}}


def _best(study):
    from optuna.trial import TrialState
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return min(complete, key=lambda t: (t.value, t.number)) if complete else None


# --------------------------------------------------------------------------- outputs


def _write_quietly(write):
    try:
        write_outputs(**write)
    except Exception:    # the error that stopped the search is the one to report
        pass


def write_outputs(study, record, shown, out_dir, stem, space, plots=False):
    """The trials table (always), the best parameters (once a trial completed) and, with
    ``plots``, the PNGs; returns ({kind: path}, notes)."""
    out_dir = Path(out_dir)
    files, notes = {"table": write_table(study, record, shown, out_dir / f"{stem}.md", space)}, []
    best = _best(study)
    if best is not None:
        files["best"] = write_json(out_dir / f"{stem}-best.json", {
            "kind": "tune-best", "net": record["net"], "study": study.study_name,
            "storage": shown, "trial": best.number, "rmse_px": best.value,
            "params": net_params(best.params, space), "objective": record,
            "finished_trials": _count_finished(study), "created_utc": utc_stamp()})
    else:
        notes.append("no trial completed yet: no best parameters")
    if plots:
        plotted, more = write_plots(study, out_dir, stem)
        files.update(plotted)
        notes += more
    return files, notes


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_table(study, record, shown, path, space) -> Path:
    """The study's trials as a Markdown table, by number; atomic."""
    import pandas as pd
    from optuna.trial import TrialState
    trials = study.get_trials(deepcopy=False)
    best = _best(study)
    counts = {state: sum(t.state == state for t in trials) for state in TrialState}
    command = (" ".join(["kfkd"] + sys.argv[1:])
               if sys.argv and sys.argv[0].endswith(("kfkd", "__main__.py")) else "kfkd tune")
    lines = [
        f"## Optuna study `{study.study_name}` (`make tune`)",
        "",
        f"Written by `{command}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"storage `{shown}`.",
        "",
        f"- Objective (minimised): RMSE in pixels over the labelled values of "
        f"{record['held_out_rows']} held-out rows (grouped hold-out {record['holdout']:g}, seed "
        f"{record['seed']}) of data `{record['data']}` ({record['rows']} rows), predicted with "
        f"flip TTA; every trial trains {record['net']} on the other rows.",
        "- Searched: " + ", ".join(f"{d.name} {d.describe()}" for d in space) + "; trial 0 is "
        f"{record['net']} as configured (its own values, not drawn), the baseline.",
        f"- Trials: {counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned, "
        f"{counts[TrialState.FAIL]} failed, {counts[TrialState.RUNNING]} running.",
        "- Best: " + ("none yet" if best is None else
                      f"trial {best.number}, {best.value:.4f} px "
                      f"(`make train NET={record['net']} PARAMS=<this file's -best.json>`)") + ".",
        "",
    ]
    rows = []
    for t in trials:
        state = t.state.name
        if t.state == TrialState.PRUNED and t.last_step is not None:
            state += f" (epoch {t.last_step + 1})"
        row = {"trial": str(t.number), "state": state,
               # a pruned trial's value is its last valid loss, not an RMSE: not shown
               "RMSE px": f"{t.value:.4f}" if t.state == TrialState.COMPLETE else "",
               "seconds": "" if t.duration is None else f"{t.duration.total_seconds():.1f}"}
        row.update({dim.name: _cell(t.params.get(dim.name)) for dim in space})
        rows.append(row)
    columns = ["trial", "state", "RMSE px", "seconds"] + [dim.name for dim in space]
    frame = pd.DataFrame(rows, columns=columns)
    if rows:
        lines.append(frame.to_markdown(index=False, disable_numparse=True,
                                       colalign=["right", "left"] + ["right"] * (len(columns) - 2)))
    else:
        lines.append("(no trials yet)")
    path = Path(path)
    with atomic_write(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


TITLES = {"history": "optimisation history", "importances": "parameter importances for the RMSE"}


def write_plots(study, out_dir, stem):
    """Optuna's optimisation history and parameter importances as PNGs; ({kind: path}, notes)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as optuna_plots
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    files, notes = {}, []
    if not complete:
        return files, ["no complete trial: no plots"]
    varying = [name for name in {k for t in complete for k in t.params}
               if len({repr(t.params.get(name)) for t in complete}) > 1]
    jobs = [("history", optuna_plots.plot_optimization_history)]
    if len(complete) >= 2 and varying:
        jobs.append(("importances", optuna_plots.plot_param_importances))
    else:
        notes.append("parameter importances need two complete trials with different "
                     f"parameters ({len(complete)} complete): no importances plot")
    for kind, plot in jobs:
        path = Path(out_dir) / f"{stem}-{kind}.png"
        with warnings.catch_warnings(record=True) as caught, plt.rc_context():
            warnings.simplefilter("always")   # Optuna's plots set a style: kept inside here
            try:
                axes = plot(study)
                axes.set_title(f"{study.study_name}: {TITLES[kind]}")
                if kind == "history":
                    axes.set_ylabel("held-out RMSE, flip TTA (px)")
                figure = axes.figure
                figure.set_size_inches(8, 5)
                try:
                    with atomic_write(path, "wb") as f:
                        figure.savefig(f, format="png", dpi=100, bbox_inches="tight")
                finally:
                    plt.close(figure)
            except (ValueError, RuntimeError) as exc:
                notes.append(f"no {kind} plot: {exc}")
                continue
        files[kind] = path
        said = {str(w.message) for w in caught
                if not issubclass(w.category, optuna.exceptions.ExperimentalWarning)}
        notes += [f"{kind}: {message}" for message in sorted(said)]
    return files, notes


def add_parser(sub):
    p = _options.command_parser(sub, "tune")
    _options.add_data(p)
    p.add_argument("--net", default="net8", choices=("net8",), metavar="NAME",
                   help="the net searched; only net8 has a search space")
    _options.add_settings(p, verbose=0)
    p.add_argument("--trials", type=_options.positive_int, default=DEFAULT_TRIALS, metavar="N",
                   help="run until the study has this many finished trials, in all; the same "
                        "command resumes a study")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna storage: an RDB URL (sqlite:///..., postgresql://...) or "
                        "journal:PATH; workers given the same one share the study "
                        "(default: sqlite:///OUT/tune-NET.db)")
    p.add_argument("--study", default=None, metavar="NAME", help="study name (default: the net's)")
    _options.add_holdout(p, DEFAULT_HOLDOUT, "the share of the rows held out to score every trial")
    p.add_argument("--no-prune", action="store_true",
                   help="run every trial to the end (default: median pruning on the valid loss)")
    _options.add_out(p, "cv", "the folder of the table, JSON and PNGs",
                     old=["--out-dir"])
    p.set_defaults(func=run)


def run(args):
    fixed = [key for key in ("epochs", "lr") if getattr(args, key) is not None]
    if getattr(args, "budget", None):   # a time budget (--budget): the epochs are not searched
        fixed.append("budget")
    run_tune(_options.estimator(args), name=args.net, data_dir=args.data, trials=args.trials,
             storage=args.storage, study_name=args.study, holdout=args.holdout,
             random_state=args.seed, out_dir=args.out, fixed=fixed,
             pruner=None if args.no_prune else "median")
