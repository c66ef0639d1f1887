"""The results table the project produces itself: every configuration, one held-out split.

``run_zoo`` trains each named configuration on the same training rows, scores it on the
same held-out rows (RMSE px over the labelled values, as Kaggle scores), optionally also
with flip test-time augmentation, and writes a Markdown table (``docs/RESULTS.md``) that
records epochs, time and device, and the command that made it.

The library behind ``kfkd zoo`` (commands/zoo.py, which builds the estimators from the
command line).
"""
from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from sklearn.frozen import FrozenEstimator

from .. import configs, data
from ..data.splits import grouped_holdout
from ..meta.tta import flip_tta
from ..net.estimator import pixel_origin_of
from ..net.metrics import masked_rmse_px
from ..net.nested import histories, inner_net
from ..utils import provenance
from ..utils.atomic import write_section

__all__ = ["run_zoo", "write_table", "DEFAULT_NETS"]

DEFAULT_NETS = ("net1", "net2", "net3", "net4", "net5", "net6", "net7", "net8", "specialists")


def _epochs_run(model):
    runs = [len(h) for h in histories(model).values()]
    return str(runs[0]) if len(runs) == 1 else f"{min(runs)}-{max(runs)} ({len(runs)} nets)"


def run_zoo(models: dict, data_dir="data", holdout=0.2, random_state=0, tta=True,
            out="docs/RESULTS.md", say=print) -> list[dict]:
    """Train and score each estimator ({name: unfitted estimator}, e.g. ``configs.build``'s
    for net1 ... specialists) on the same rows; write the Markdown table; return its rows.

    Every model gets the same training rows and is scored on all the labelled values of
    the same held-out rows (``holdout``, shuffled with ``random_state``); which training
    rows it uses is its own setting
    (``complete_only``). The specialists are pre-trained from this run's net6 when net6
    ran before them and no other base was given, as in the tutorial.
    """
    origins = {pixel_origin_of(model, fitted=False) for model in models.values()}
    if len(origins) > 1:
        raise ValueError(f"the nets are set to different pixel origins {sorted(origins)}; "
                         "one data set has one")
    folder = data.resolve_data_dir(data_dir, say, origins.pop() if origins else None)
    training = data.load_training(folder)
    X, y = training.X, training.y
    train_rows, held_rows = grouped_holdout(X, holdout, random_state)
    results, trained = [], {}
    for i, (name, model) in enumerate(models.items(), 1):
        config = configs.CONFIGS.get(name)
        settings = configs.settings(model)
        base = None
        specialist_net = config.specialist_net if config else None
        if specialist_net and settings["base"] is None and specialist_net in trained:
            base = specialist_net
            configs.configure(model, base=FrozenEstimator(trained[base]))
        fit_rows = inner_net(model).fit_rows(y[train_rows])
        say(f"[{i}/{len(models)}] {name}" + (f": {config.description}" if config else "")
            + f"; {len(fit_rows)} rows, {settings['max_epochs']} epochs on {settings['device']}"
            + (f", pre-trained from {base}" if base else ""))
        start = time.perf_counter()
        model.fit(X[train_rows], y[train_rows])
        seconds = time.perf_counter() - start
        trained[name] = model
        row = {"net": name, "description": config.description if config else name,
               "train_rows": len(fit_rows), "epochs": _epochs_run(model),
               "max_epochs": settings["max_epochs"],
               "tutorial_epochs": configs.trained_config(name).max_epochs if config else None,
               "seconds": seconds, "device": settings["device"],
               "rmse_px": masked_rmse_px(y[held_rows], model.predict(X[held_rows]))}
        if tta:
            row["rmse_tta_px"] = masked_rmse_px(y[held_rows], flip_tta(model).predict(X[held_rows]))
        say(f"    held-out RMSE {row['rmse_px']:.3f} px"
            + (f", with flip TTA {row['rmse_tta_px']:.3f} px" if tta else "")
            + f" ({seconds:.0f} s)")
        results.append(row)
        if out:  # rewrite after every net, so a long run leaves a useful table behind
            write_table(results, out, training, len(held_rows), random_state)
    return results


def _epochs_text(results) -> str:
    changed = [f"{r['net']}: {r['max_epochs']}" for r in results
               if r["tutorial_epochs"] is not None and r["max_epochs"] != r["tutorial_epochs"]]
    if not changed:
        return "the tutorial's."
    return (f"**not the tutorial's** for {', '.join(changed)}; the tutorial's are in the last "
            "column, so those rows are not the tutorial's results. Schedules run from start "
            "to stop within the epochs run.")


def write_table(results, out, training, n_held, seed) -> Path:
    versions = provenance.library_versions()
    lines = [
        "## Every configuration on one held-out split (`make zoo`)",
        "",
        f"Produced by `{' '.join(['kfkd'] + sys.argv[1:]) if sys.argv[0].endswith(('kfkd', '__main__.py')) else 'kfkd zoo'}`"
        f" on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        f"- Data: `{training.source}` (fingerprint `{training.fingerprint}`), {len(training.X)} rows; "
        f"{n_held} rows held out (seed {seed}), scored as Kaggle scores: RMSE in pixels over "
        "the labelled values only (most held-out rows label only 4 keypoints).",
        f"- Machine: {provenance.describe_machine()}; torch {versions['torch']}, skorch {versions['skorch']}.",
        "- Epochs: " + _epochs_text(results),
        "",
    ]
    table = pd.DataFrame({
        "net": [r["net"] for r in results],
        "what": [r["description"] for r in results],
        "train rows": [r["train_rows"] for r in results],
        "epochs run": [r["epochs"] for r in results],
        "held-out RMSE (px)": [f"{r['rmse_px']:.3f}" for r in results],
        "+ flip TTA (px)": [f"{r['rmse_tta_px']:.3f}" if "rmse_tta_px" in r else "" for r in results],
        "time (s)": [f"{r['seconds']:.0f}" for r in results],
        "device": [r["device"] for r in results],
        "tutorial epochs": ["" if r["tutorial_epochs"] is None else r["tutorial_epochs"] for r in results],
    })
    lines.append(table.to_markdown(index=False, disable_numparse=True,
                                   colalign=["left", "left"] + ["right"] * 5 + ["left", "right"]))
    # only the zoo's own section: the file also holds net8's results (benchmarks/net8_runs.py)
    return write_section(out, "zoo", "\n".join(lines))
