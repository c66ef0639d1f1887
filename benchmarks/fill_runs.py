"""Filling the missing keypoints of the 4-point rows on real faces, two ways, against net8 on
the rows as they are. faces15 labels all 15 keypoints on about 30% of its rows and 4 on the
rest, so 11 keypoints learn from a third of the faces.

    python -m benchmarks.fill_runs --data ../shared/data/faces15 \\
        --out benchmarks/fill-runs.jsonl --arm teacher --seeds 100,101 --epochs 80
    python -m benchmarks.fill_runs ... --arm base,teacher-fill,teacher-fill+test \\
        --teachers 100,101 --seeds 0,1,2 --epochs 80
    python -m benchmarks.fill_runs ... --arm self-fill --seeds 0,1 --epochs 40 --at 0.5

- ``teacher``: one net8 on the split's training rows; its flip TTA over 2-px shifts on those
  rows and on the test images is saved (``--teacher-stem``-SEED.npz) for the fill arms.
- ``teacher-fill``: net8 on the training rows with every missing value set to the mean of
  the ``--teachers``' predictions.
- ``teacher-fill+test``: the same, and the test images join the training rows with all 30
  values the teachers' (their images are given, their labels are not).
- ``self-fill``: net8 that, at ``--at`` of its planned epochs, sets every missing value of its
  training rows to what its own weight average predicts then (plain, bf16), and trains on.
- ``base``: net8 on the rows as they are.

The split is net8_runs's (``splits.grouped_holdout``, 20%, seed 0); the held-out rows keep
their own labels and are scored over all of them, over the 15-point rows and over the
4-point rows, with flip TTA. The test images are used as images only (the teachers label
them; they have no labels here). One JSON line per run.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from skorch.callbacks import Callback
from torch.utils.data import Subset

from kfkd_kit import data
from kfkd_kit.meta.tta import flip_tta
from kfkd_kit.net.metrics import masked_rmse_px

from .arms import gain_line
from .net8_runs import _machine_fields, _setup, append_record, read_records


class SelfFill(Callback):
    """At epoch ``at`` × max_epochs, the training rows' missing targets (scaled) become the
    weight average's predictions; they stay those for the rest of the fit."""

    def __init__(self, at=0.5):
        self.at = at

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        if len(net.history) - 1 != int(self.at * net.max_epochs):
            return
        dataset = dataset_train
        while isinstance(dataset, Subset):
            dataset = dataset.dataset
        module = dict(net.callbacks_)["weight_average"].average_.module
        module.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            predicted = torch.cat([module(dataset.X[i:i + 512]).float()
                                   for i in range(0, len(dataset.X), 512)])
        module.train()
        dataset.y = torch.where(torch.isnan(dataset.y), predicted, dataset.y)


def _teachers(stem, seeds) -> tuple[np.ndarray, np.ndarray]:
    """The mean of the teachers' predictions: (training rows, test images)."""
    saved = [np.load(f"{stem}-{seed}.npz") for seed in seeds]
    return (np.mean([s["train"] for s in saved], axis=0),
            np.mean([s["test"] for s in saved], axis=0))


def run(data_dir, arm, seed, epochs, at, teacher_stem, teachers=()) -> dict:
    training, train_rows, held_rows, model, what = _setup(data_dir, "base", seed, epochs, 0)
    X, y = training.X[train_rows], training.y[train_rows]
    if arm.startswith("teacher-fill"):
        taught, test_labels = _teachers(teacher_stem, teachers)
        y = np.where(np.isnan(y), taught, y).astype(np.float32)
        if arm == "teacher-fill+test":
            X = np.concatenate([X, data.load_test(data_dir).X])
            y = np.concatenate([y, test_labels]).astype(np.float32)
    if arm == "self-fill":
        net = model.named_steps["net"]
        net.callbacks = list(net.callbacks) + [("self_fill", SelfFill(at))]
    start = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - start
    held, truth = training.X[held_rows], training.y[held_rows]
    tta = flip_tta(model, shift=2)
    views = tta.predict_views(held)
    full = ~np.isnan(truth).any(axis=1)
    if arm == "teacher":
        np.savez(f"{teacher_stem}-{seed}.npz",
                 **{name: tta.predict_views(images).mean(0).astype(np.float32)
                    for name, images in (("train", X), ("test", data.load_test(data_dir).X))})
    return {"arm": arm, "at": at if arm == "self-fill" else None,
            "teachers": list(teachers) if arm.startswith("teacher-fill") else None,
            "seed": seed, "epochs": epochs, **_machine_fields(),
            "train_rows": len(X), "held_rows": len(held_rows),
            "missing_values": int(np.isnan(training.y[train_rows]).sum()),
            "seconds": round(seconds, 1),
            "rmse_px": masked_rmse_px(truth, model.predict(held)),
            "rmse_tta_px": masked_rmse_px(truth, views[0]),
            "rmse_tta_shift2_px": masked_rmse_px(truth, views.mean(0)),
            "rmse_tta_15point_rows_px": masked_rmse_px(truth[full], views[0][full]),
            "rmse_tta_4point_rows_px": masked_rmse_px(truth[~full], views[0][~full]),
            "data": training.fingerprint}


def summary(path) -> None:
    """Each arm's mean ± sd over seeds, per epochs, and its gain over base seed by seed."""
    runs = {}
    for r in read_records(path):
        runs.setdefault((r["epochs"], r["arm"], str(r.get("teachers") or r.get("at") or "")),
                        {})[r["seed"]] = r
    keys = ("rmse_tta_px", "rmse_tta_shift2_px", "rmse_tta_15point_rows_px",
            "rmse_tta_4point_rows_px")
    for (epochs, arm, what), seeds in sorted(runs.items()):
        print(f"{arm} {what} {epochs} epochs, seeds {sorted(seeds)}: " + ", ".join(
            f"{k} {statistics.mean(r[k] for r in seeds.values()):.4f} +- "
            f"{statistics.stdev(r[k] for r in seeds.values()) if len(seeds) > 1 else 0:.4f}"
            for k in keys))
        base = runs.get((epochs, "base", ""), {})
        common = sorted(set(base) & set(seeds))
        if arm != "base" and common:
            for k in keys[:2]:
                print(f"  {k}: " + gain_line("base", [base[s][k] for s in common], arm,
                                             [seeds[s][k] for s in common]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data")
    p.add_argument("--out", default="benchmarks/fill-runs.jsonl")
    p.add_argument("--arm", default="base", help="comma-separated: teacher, teacher-fill, "
                                                 "teacher-fill+test, self-fill, base")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--at", type=float, default=0.5, help="self-fill: when, as a share of epochs")
    p.add_argument("--teachers", default="100,101", help="the teachers' seeds, for the fill arms")
    p.add_argument("--teacher-stem", default="benchmarks/fill-teacher",
                   help="the teachers' predictions, STEM-SEED.npz (written by --arm teacher)")
    p.add_argument("--summary", action="store_true")
    args = p.parse_args(argv)
    if args.summary:
        return summary(args.out)
    for seed in (int(s) for s in args.seeds.split(",")):
        for arm in args.arm.split(","):
            append_record(args.out, run(args.data, arm, seed, args.epochs, args.at,
                                        args.teacher_stem,
                                        [int(t) for t in args.teachers.split(",")]))


if __name__ == "__main__":
    main()
