"""Pseudo-labels on real faces: net8 on one held-out split, then a second net8 trained on its
rows and on the test images where the first net's flip/shift views agree (meta/pseudo.py).
The first net is also scored with each labelling group's offset added (meta/labellers.py),
each held-out row predicted for its own group: that needs no second fit.

    python -m benchmarks.pseudo_runs --data ../shared/data/faces15 \\
        --out benchmarks/pseudo-runs.jsonl --seeds 0,1,2 --epochs 30 [--agree-px 1.0] [--weight 1]
        [--together]

The split is net8_runs's (``splits.grouped_holdout``, 20%, seed 0); the test images are the
competition's, unlabelled: only their images are used. One JSON line per seed: the first net
alone and the second, each plain, with flip TTA and with flip TTA over 2-px shifts, and how
many pseudo-labels were kept. ``--summary`` prints the mean and spread over seeds.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from kfkd_kit import data
from kfkd_kit.data.label_checks import labelling_groups
from kfkd_kit.meta.labellers import LabellerBias
from kfkd_kit.meta.pseudo import PseudoLabels
from kfkd_kit.meta.tta import flip_tta
from kfkd_kit.net.metrics import masked_rmse_px

from .arms import gain_line, heldout_scores
from .net8_runs import _machine_fields, _setup, append_record, read_records


def _labeller_scores(first, train, held, truth) -> dict:
    """The first net with each labelling group's offsets measured on its training rows,
    every held-out row predicted for its own group; flip TTA inside."""
    aware = LabellerBias(first)
    aware.estimator_, aware.n_features_in_ = first, train[0].shape[1]
    aware.measure(*train)
    groups = [None] * len(truth)
    for group in labelling_groups(truth)[0]:
        for r in group["rows"]:
            groups[r] = group["group"]
    tta = flip_tta(aware, shift=2)
    views = tta.estimator_.predict_views(held)
    offsets = np.stack([aware.offsets_.get(g, aware.offsets_[aware.reference_]) for g in groups])
    return {"labeller_offsets_px": {g: [round(float(v), 3) for v in o]
                                    for g, o in aware.offsets_.items()},
            "labeller_rmse_tta_px": masked_rmse_px(truth, views[0] + offsets),
            "labeller_rmse_tta_shift2_px": masked_rmse_px(truth, views.mean(0) + offsets)}


def run_labellers(data_dir, seed, epochs, variant="base"):
    """One net, scored plain and with each labelling group's offset (no pseudo-labels)."""
    training, train_rows, held_rows, model, what = _setup(data_dir, variant, seed, epochs, 0)
    start = time.perf_counter()
    model.fit(training.X[train_rows], training.y[train_rows])
    seconds = time.perf_counter() - start
    held, truth = training.X[held_rows], training.y[held_rows]
    return {"variant": variant + "/labellers", "what": what, "seed": seed, "epochs": epochs,
            **_machine_fields(), "train_rows": len(train_rows), "held_rows": len(held_rows),
            "seconds": round(seconds, 1), **heldout_scores(model, held, truth, "first"),
            **_labeller_scores(model, (training.X[train_rows], training.y[train_rows]),
                               held, truth), "data": training.fingerprint}


def run(data_dir, seed, epochs, agree_px, weight, variant="base", clean=False):
    """Both nets; with ``clean`` (all three options together) the training rows cleaned
    first as clean_runs.py does, and the second net scored with the groups' offsets too."""
    training, train_rows, held_rows, model, what = _setup(data_dir, variant, seed, epochs, 0)
    test = data.load_test(data_dir)
    X, y = training.X[train_rows], training.y[train_rows]
    if clean:
        from kfkd_kit.data.audit import audit, clean_changes
        from .clean_runs import apply_changes
        X, y = apply_changes(X, y, clean_changes(audit(X, y), y))
    pseudo = PseudoLabels(model, unlabelled=test.X, weight=weight, agree_px=agree_px)
    start = time.perf_counter()
    pseudo.fit(X, y)
    seconds = time.perf_counter() - start
    held, truth = training.X[held_rows], training.y[held_rows]
    together = {}
    if clean:
        together = {f"second_{key}": value for key, value in
                    _labeller_scores(pseudo, (X, y), held, truth).items()}
    return {"variant": variant + ("/cleaned" if clean else ""), "what": what, "seed": seed,
            "epochs": epochs, "agree_px": agree_px, "weight": weight, **_machine_fields(),
            "train_rows": len(X), "held_rows": len(held_rows),
            "test_images": len(test.X), "kept_fraction": pseudo.kept_fraction_,
            "seconds": round(seconds, 1),
            **heldout_scores(pseudo.first_, held, truth, "first"),
            **_labeller_scores(pseudo.first_, (X, y), held, truth),
            **heldout_scores(pseudo, held, truth, "second"), **together,
            "data": training.fingerprint}


def summary(path):
    lines = read_records(path)
    groups = {}
    for line in lines:
        if "agree_px" in line:            # --labellers-only lines have no second net
            key = (line["variant"], line["epochs"], line["agree_px"], line["weight"])
            groups.setdefault(key, []).append(line)
    for (variant, epochs, agree, weight), runs in sorted(groups.items()):
        print(f"{variant}, epochs {epochs}, agree {agree} px, weight {weight}: {len(runs)} "
              f"seeds ({', '.join(str(r['seed']) for r in runs)}), kept "
              f"{statistics.mean(r['kept_fraction'] for r in runs):.2f}")
        for key in ("rmse_tta_px", "rmse_tta_shift2_px", "labeller_rmse_tta_px",
                    "labeller_rmse_tta_shift2_px"):
            if f"second_{key}" not in runs[0]:
                continue
            first = [r[f"first_{key.removeprefix('labeller_')}"] for r in runs]
            print(f"  second net {key} against the first net's own: "
                  + gain_line("first", first, "second", [r[f"second_{key}"] for r in runs]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data")
    p.add_argument("--out", default="benchmarks/pseudo-runs.jsonl")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--agree-px", type=float, default=1.0)
    p.add_argument("--weight", type=float, default=1.0)
    p.add_argument("--summary", action="store_true")
    p.add_argument("--together", action="store_true",
                   help="the training rows cleaned first (clean_runs.py), and the second net "
                        "also scored with the labelling groups' offsets: all three at once")
    p.add_argument("--labellers-only", action="store_true",
                   help="one net per seed, scored with and without the groups' offsets")
    args = p.parse_args(argv)
    if args.summary:
        return summary(args.out)
    for seed in (int(s) for s in args.seeds.split(",")):
        line = (run_labellers(args.data, seed, args.epochs) if args.labellers_only else
                run(args.data, seed, args.epochs, args.agree_px, args.weight,
                    clean=args.together))
        append_record(args.out, line)


if __name__ == "__main__":
    main()
