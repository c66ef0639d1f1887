"""The audit's cleaning on real faces: net8 trained on the split's training rows as they are
and as `kfkd audit --clean` would leave them, both scored on the held-out rows' own labels.

    python -m benchmarks.clean_runs --data ../shared/data/faces15 \\
        --out benchmarks/clean-runs.jsonl --seeds 0,1,2 --epochs 30

The split is net8_runs's (``splits.grouped_holdout``, 20%, seed 0). The audit sees the
training rows only (and no out-of-fold predictions: the checks that need no net), so the
held-out labels are never cleaned; ``data.audit.clean_changes`` gives the changes, applied
here in memory as ``write_clean`` applies them to the file. One JSON line per seed;
``--summary`` prints the mean and spread over seeds.
"""
from __future__ import annotations

import argparse
import time
from collections import Counter

import numpy as np

from kfkd_kit.data.audit import audit, clean_changes
from kfkd_kit.keypoints import FEATURE_NAMES

from .arms import gain_line, heldout_scores
from .net8_runs import _machine_fields, _setup, append_record, read_records


def apply_changes(X, y, changes):
    """(X, y) as the cleaned file reads back: rows dropped, merged and swapped values taken
    from the labels as they were, outliers emptied."""
    before, after = np.asarray(y, dtype=np.float32), np.array(y, dtype=np.float32)
    column = {name: j for j, name in enumerate(FEATURE_NAMES)}
    dropped = set()
    for change in changes:
        if change.column == "":
            dropped.add(change.row)
            continue
        j = column[change.column]
        source = str(change.new)
        if source == "":
            after[change.row, j] = np.nan
        elif source.startswith("@") and source[1:].isdigit():     # merged from a copy
            after[change.row, j] = before[int(source[1:]), j]
        elif source.startswith("@"):                              # a swapped pair
            after[change.row, j] = before[change.row, column[source[1:]]]
    keep = np.array([r for r in range(len(after)) if r not in dropped], dtype=np.int64)
    return np.asarray(X)[keep], after[keep]


def _kind(change) -> str:
    if change.column == "":
        return "row dropped"
    if str(change.new) == "":
        return "value emptied"
    return "value merged" if str(change.new)[1:].isdigit() else "value swapped"


def run(data_dir, seed, epochs) -> dict:
    line = {"seed": seed, "epochs": epochs, **_machine_fields()}
    for arm in ("as is", "cleaned"):
        training, train_rows, held_rows, model, what = _setup(data_dir, "base", seed, epochs, 0)
        X, y = training.X[train_rows], training.y[train_rows]
        if arm == "cleaned":
            changes = clean_changes(audit(X, y), y)
            line["changes"] = dict(Counter(_kind(c) for c in changes))
            X, y = apply_changes(X, y, changes)
        start = time.perf_counter()
        model.fit(X, y)
        line[f"{arm}/seconds"] = round(time.perf_counter() - start, 1)
        line[f"{arm}/rows"] = len(X)
        line.update({f"{arm}/{key}": value for key, value in heldout_scores(
            model, training.X[held_rows], training.y[held_rows], "net").items()})
        line["data"] = training.fingerprint
    return line


def summary(path):
    lines = read_records(path)
    for epochs in sorted({line["epochs"] for line in lines}):
        runs = [line for line in lines if line["epochs"] == epochs]
        print(f"epochs {epochs}: {len(runs)} seeds, changes {runs[0].get('changes')}")
        for key in ("net_rmse_tta_px", "net_rmse_tta_shift2_px"):
            print(f"  {key}: " + gain_line("as is", [r[f"as is/{key}"] for r in runs],
                                           "cleaned", [r[f"cleaned/{key}"] for r in runs]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data")
    p.add_argument("--out", default="benchmarks/clean-runs.jsonl")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--summary", action="store_true")
    args = p.parse_args(argv)
    if args.summary:
        return summary(args.out)
    for seed in (int(s) for s in args.seeds.split(",")):
        line = run(args.data, seed, args.epochs)
        append_record(args.out, line)


if __name__ == "__main__":
    main()
