"""What `kfkd tune` (search/study.py) writes, all atomically: the trials as a Markdown table,
the best trial's parameters as JSON (what ``--params`` takes), and Optuna's optimisation
history and parameter importances as PNGs."""
from __future__ import annotations

import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path

from ..utils.atomic import atomic_write, save_figure, utc_stamp, write_json
from .space import net_params

__all__ = ["write_outputs", "write_table", "write_plots", "best_trial", "count_finished",
           "write_quietly"]


def _finished_states():
    from optuna.trial import TrialState
    return (TrialState.COMPLETE, TrialState.PRUNED)


def count_finished(study) -> int:
    return len(study.get_trials(deepcopy=False, states=_finished_states()))


def best_trial(study):
    from optuna.trial import TrialState
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return min(complete, key=lambda t: (t.value, t.number)) if complete else None


def write_quietly(write):
    try:
        write_outputs(**write)
    except Exception:    # the error that stopped the search is the one to report
        pass


def write_outputs(study, record, shown, out_dir, stem, space, plots=False):
    """The trials table (always), the best parameters (once a trial completed) and, with
    ``plots``, the PNGs; returns ({kind: path}, notes)."""
    out_dir = Path(out_dir)
    files, notes = {"table": write_table(study, record, shown, out_dir / f"{stem}.md", space)}, []
    best = best_trial(study)
    if best is not None:
        files["best"] = write_json(out_dir / f"{stem}-best.json", {
            "kind": "tune-best", "net": record["net"], "study": study.study_name,
            "storage": shown, "trial": best.number, "rmse_px": best.value,
            "params": net_params(best.params, space), "objective": record,
            "finished_trials": count_finished(study), "created_utc": utc_stamp()})
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
    best = best_trial(study)
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
                    save_figure(figure, path)
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


