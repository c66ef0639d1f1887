"""Where faces15's labels mirror, measured with nets that never saw a mirrored face.

    python -m benchmarks.mirror_axis_runs --data ../shared/data/faces15 --seeds 0,1,2 --epochs 40

Flip augmentation and flip TTA mirror the labels about an axis ``a`` (x -> 2a - x). A net
trained with flips about a wrong axis learns to predict x off by about the error, so the axis
cannot be read from such a net. Each run here trains net8 *without* flip augmentation
(variant "no-flip") on the grouped split's training rows, predicts the held-out images and
their mirrors, and keeps the axis that makes its mirrored answers agree with the labels
(``data.mirror.flip_consistent_axis``: the net's own bias in x is taken out). Beside it, the
image-symmetry estimate the estimator starts from (``estimate_flip_axis``) under each pixel
origin, so the two can be compared. One JSON line per seed in ``--out``.
"""
from __future__ import annotations

import argparse
import statistics
import time

from kfkd_kit.data.mirror import estimate_flip_axis, flip_consistent_axis
from kfkd_kit.keypoints import mirror_images

from .net8_runs import _machine_fields, _setup, append_record, read_records

# how estimate_flip_axis measured: each record names it (the first two, the first version)
ESTIMATOR = "one mismatch curve over the faces, the window on the candidate line"


def run(data_dir, seed, epochs, split_seed=0) -> dict:
    training, train_rows, held_rows, model, what = _setup(data_dir, "no-flip", seed, epochs,
                                                          split_seed)
    X, y = training.X, training.y
    start = time.perf_counter()
    model.fit(X[train_rows], y[train_rows])
    seconds = time.perf_counter() - start
    row = {"seed": seed, "epochs": epochs, "what": what, **_machine_fields(),
           "seconds": round(seconds, 1), "data": training.fingerprint, "split_seed": split_seed}
    for name, rows in (("held", held_rows), ("train", train_rows[:2000])):
        axis, rmse = flip_consistent_axis(model.predict(X[rows]),
                                          model.predict(mirror_images(X[rows])), y[rows])
        row[f"axis_{name}"], row[f"rmse_{name}_px"] = axis, rmse
    row["estimator"] = ESTIMATOR
    for origin in (0.5, 1.0):
        row[f"axis_images_origin{origin:g}"] = estimate_flip_axis(X[train_rows], y[train_rows],
                                                                  origin=origin)
    return row


def summary(path) -> str:
    rows = read_records(path)
    lines = [f"{len(rows)} runs ({', '.join(str(r['seed']) for r in rows)})"]

    def line(key, values):
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{key}: {statistics.mean(values):.3f} ± {spread:.3f}"

    for key in ("axis_held", "axis_train", "rmse_held_px"):
        lines.append(line(key, [r[key] for r in rows]))
    for estimator in dict.fromkeys(r.get("estimator", "?") for r in rows):   # the images' own
        same = [r for r in rows if r.get("estimator", "?") == estimator]
        lines += [f"{line(key, [r[key] for r in same])} ({estimator})"
                  for key in ("axis_images_origin0.5", "axis_images_origin1")]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/faces15")
    parser.add_argument("--out", default="benchmarks/mirror-axis-runs.jsonl")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--summary", action="store_true")
    args = parser.parse_args(argv)
    if not args.summary:
        for seed in (int(s) for s in args.seeds.split(",")):
            append_record(args.out, run(args.data, seed, args.epochs))
    print(summary(args.out))


if __name__ == "__main__":
    main()
