"""Stacking on real faces, scored on the held-out split: the fold models or the members
refitted on every row, and whether a stack beats spending its training on longer nets.

    python -m benchmarks.stack_runs --data ../shared/data/faces15 \\
        --out benchmarks/stack-runs.jsonl --seeds 0,1,2 --epochs 25 [--folds 3]

Per seed, two members (net8 with its dense head and with its soft-argmax head), each:

- cross-validated over the same grouped folds of the split's training rows (``--folds``,
  ``--epochs`` each): its fold models and their out-of-fold predictions, as `kfkd cv`;
- refitted on all the training rows for ``--epochs`` (what `kfkd stack` does by default);
- trained once for ``--long-epochs`` on all the training rows (default ``folds * epochs``:
  the epochs x rows that the folds, each on (folds-1)/folds of the rows, and the refit
  cost together).

Scored on the held-out rows (``splits.grouped_holdout``, 20%, seed 0; the competition's test
images never used), plain and with flip TTA: each member alone, the plain mean and each
stack (NNLS, ElasticNet, fitted on the out-of-fold predictions) over the fold models and
over the refitted members, and the plain mean of the long nets: the same training time
spent without a stack. ``--summary`` prints the mean and spread over seeds.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from sklearn.base import clone

from kfkd_kit import configs, data
from kfkd_kit.data.splits import grouped_holdout, grouped_kfold, image_groups
from kfkd_kit.meta.ensemble import FoldEnsemble
from kfkd_kit.meta.stack import StackedKeypoints, fit_meta, nested_cv_predictions
from kfkd_kit.meta.tta import flip_tta
from kfkd_kit.net.metrics import masked_rmse_px
from kfkd_kit.search.selection import out_of_fold

from .net8_runs import _machine_fields, append_record, read_records

HEADS = ("dense", "softargmax")
METHODS = ("mean", "nnls", "elasticnet")


def _member(head, epochs, seed):
    return configs.build("net8", head=head, epochs=epochs, seed=seed, verbose=0,
                         valid_fraction=0)


def _score(model, held, truth) -> dict:
    return {"plain": masked_rmse_px(truth, model.predict(held)),
            "tta": masked_rmse_px(truth, flip_tta(model).predict(held))}


def run(data_dir, seed, epochs, folds, long_epochs, split_seed=0) -> dict:
    training = data.load_training(data_dir)
    train_rows, held_rows = grouped_holdout(training.X, 0.2, split_seed)
    X, y = training.X[train_rows], training.y[train_rows]
    held, truth = training.X[held_rows], training.y[held_rows]
    splits = grouped_kfold(X, folds, seed)
    line = {"seed": seed, "epochs": epochs, "folds": folds, "long_epochs": long_epochs,
            **_machine_fields(), "train_rows": len(X), "held_rows": len(held),
            "data": training.fingerprint, "seconds": {}, "scores": {}}
    fold_members, refits, longs, oof = [], [], [], []
    for head in HEADS:
        start = time.perf_counter()
        ensemble = FoldEnsemble(_member(head, epochs, seed), cv=splits).fit(X, y)
        line["seconds"][f"{head}/folds"] = round(time.perf_counter() - start, 1)
        predicted, fold_of, _ = out_of_fold(ensemble.estimators_, splits, X)
        oof.append(predicted)
        start = time.perf_counter()
        refit = clone(_member(head, epochs, seed)).fit(X, y)
        line["seconds"][f"{head}/refit"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        long = _member(head, long_epochs, seed).fit(X, y)
        line["seconds"][f"{head}/long"] = round(time.perf_counter() - start, 1)
        fold_members.append(ensemble)
        refits.append(refit)
        longs.append(long)
        line["scores"][f"{head}/folds"] = _score(ensemble, held, truth)
        line["scores"][f"{head}/refit"] = _score(refit, held, truth)
        line["scores"][f"{head}/long"] = _score(long, held, truth)
        line["scores"][f"{head}/oof"] = {"plain": masked_rmse_px(y, predicted)}
    oof = np.stack(oof)
    groups = image_groups(X)
    line["nested_cv"] = {m: masked_rmse_px(y, nested_cv_predictions(oof, y, fold_of, m, groups))
                         for m in METHODS}
    for method in METHODS:
        coef, intercept = fit_meta(oof, y, method, groups)
        for kind, members in (("folds", fold_members), ("refit", refits), ("long", longs)):
            if kind == "long" and method != "mean":
                continue       # the long nets have no out-of-fold predictions of their own
            stack = StackedKeypoints.from_fitted(members, coef, intercept, method,
                                                 n_features=X.shape[1])
            line["scores"][f"stack-{method}/{kind}"] = _score(stack, held, truth)
    return line


def summary(path):
    lines = read_records(path)
    groups = {}
    for line in lines:
        groups.setdefault((line["epochs"], line["folds"], line["long_epochs"]), []).append(line)
    for (epochs, folds, long_epochs), runs in sorted(groups.items()):
        print(f"epochs {epochs}, folds {folds}, long nets {long_epochs} epochs: "
              f"{len(runs)} seeds ({', '.join(str(r['seed']) for r in runs)}), "
              f"{runs[0]['cpu']}")
        print(f"| candidate | plain | + flip TTA | per seed (TTA) |")
        print("| --- | ---: | ---: | --- |")
        for name in runs[0]["scores"]:
            cells = []
            for key in ("plain", "tta"):
                values = [r["scores"][name].get(key) for r in runs]
                if None in values:
                    cells.append("")
                    continue
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                cells.append(f"{statistics.mean(values):.3f} ± {sd:.3f}")
            per_seed = ", ".join(f"{r['scores'][name]['tta']:.3f}" for r in runs
                                 if "tta" in r["scores"][name])
            print(f"| {name} | {cells[0]} | {cells[1]} | {per_seed} |")
        for method in METHODS:
            values = [r["nested_cv"][method] for r in runs]
            print(f"nested CV {method}: {statistics.mean(values):.3f} ± "
                  f"{statistics.stdev(values) if len(values) > 1 else 0.0:.3f}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data")
    p.add_argument("--out", default="benchmarks/stack-runs.jsonl")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--long-epochs", type=int, default=None,
                   help="epochs of the long nets (default: folds x epochs)")
    p.add_argument("--summary", action="store_true")
    args = p.parse_args(argv)
    if args.summary:
        return summary(args.out)
    long_epochs = args.long_epochs or args.folds * args.epochs
    for seed in (int(s) for s in args.seeds.split(",")):
        line = run(args.data, seed, args.epochs, args.folds, long_epochs)
        append_record(args.out, line)


if __name__ == "__main__":
    main()
