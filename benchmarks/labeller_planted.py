"""LabellerBias on synthetic faces with a planted offset between the labelling groups, with
net8: how much of the planted error it takes back, on held-out rows of each group.

    python -m benchmarks.labeller_planted --seed 0 [--epochs 30] [--rows 1200]

Two thirds of the rows label only the 4 common keypoints, placed (+3.0, -2.5) px from where
the 15-point rows would put them (as tests/meta/test_labellers.py plants it); a quarter of
the rows are held out. Prints one JSON line: each group's mean error on the 4 common
keypoints (|bias|, px) and its RMSE, plain and with the offsets, flip TTA in both.
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from kfkd_kit import configs
from kfkd_kit.data import make_faces
from kfkd_kit.keypoints import COMMON_KEYPOINTS, columns_of
from kfkd_kit.meta.labellers import LabellerBias
from kfkd_kit.meta.tta import flip_tta

COLUMNS = columns_of(COMMON_KEYPOINTS)
OFFSET = np.array([3.0, -2.5] * 4, np.float32)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--rows", type=int, default=1200)
    args = p.parse_args(argv)
    X, y = make_faces(args.rows, seed=100 + args.seed)
    four = np.arange(args.rows) % 3 != 0
    y[np.ix_(four, [c for c in range(30) if c not in COLUMNS])] = np.nan
    y[np.ix_(four, COLUMNS)] += OFFSET
    groups = np.where(four, "4-point", "15-point")
    cut = args.rows * 3 // 4
    net = configs.build("net8", epochs=args.epochs, seed=args.seed, verbose=0, valid_fraction=0.0)
    model = flip_tta(LabellerBias(net).fit(X[:cut], y[:cut]))
    held, truth = X[cut:], y[cut:]
    plain = model.estimator_.predict(held)
    aware = model.predict_groups(held, list(groups[cut:]))
    out = {"seed": args.seed, "epochs": args.epochs, "rows": args.rows,
           "offsets_px": {g: [round(float(o[c]), 3) for c in COLUMNS]
                          for g, o in model.offsets_.items()}}
    for name, rows in (("4-point", four[cut:]), ("15-point", ~four[cut:])):
        for label, pred in (("plain", plain), ("aware", aware)):
            err = pred[rows][:, COLUMNS] - truth[rows][:, COLUMNS]
            out[f"{name} {label} |bias| px"] = round(float(np.abs(np.nanmean(err, 0)).mean()), 3)
            out[f"{name} {label} rmse px"] = round(float(np.sqrt(np.nanmean(err ** 2))), 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
