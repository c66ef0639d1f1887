"""Test-time views beyond flip and shifts: does averaging over small rotations or scalings of
each image add to flip TTA, or to flip TTA over 2-px shifts (`TTA_SHIFT=2`)?

    python -m benchmarks.tta_views --data ../shared/data/faces15 --seed S --epochs 60 \\
        [--out benchmarks/tta-views.jsonl]

One net8 per seed on net8_runs's held-out split (``splits.grouped_holdout``, 20%, seed 0),
then its held-out RMSE with flip TTA (``s0``) and flip TTA over shifts (``s2``), each alone
and averaged with the same views of the images rotated by +-4, +-6 or +-10 degrees
(``_rot4``...) or scaled by 0.95 and 1.05 (``_scale5``) about the image centre, each view's
keypoints moved back by the inverse map (keypoints.affine_images / affine_targets, the
maps training's augmentation uses). One JSON line per seed.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from kfkd_kit.keypoints import affine_images, affine_targets
from kfkd_kit.meta.tta import flip_tta
from kfkd_kit.net.estimator import pixel_origin_of
from kfkd_kit.net.metrics import masked_rmse_px

from .net8_runs import _machine_fields, _setup, append_record

ROTATIONS = (4, 6, 10)
SCALES = (0.95, 1.05)


def warped_views(tta, images, origin, angle=0.0, factor=1.0) -> np.ndarray:
    """(views, n, 30): ``tta``'s views of ``images`` rotated by ``angle`` degrees and scaled
    by ``factor``, their keypoints moved back to the images as given."""
    a = np.deg2rad(angle)
    c, s = np.cos(a) * factor, np.sin(a) * factor
    matrix = torch.tensor([[[c, -s], [s, c]]], dtype=torch.float32).repeat(len(images), 1, 1)
    offset = torch.zeros(len(images), 2)
    warped = affine_images(torch.tensor(images, dtype=torch.float32), matrix, offset).numpy()
    views = tta.predict_views(np.clip(np.rint(warped), 0, 255).astype(np.uint8))
    inverse = torch.linalg.inv(matrix).double()
    return np.stack([affine_targets(torch.tensor(v), inverse, offset.double(),
                                    origin=origin).numpy() for v in views])


def run(data_dir, seed, epochs) -> dict:
    training, train_rows, held_rows, model, _ = _setup(data_dir, "base", seed, epochs, 0)
    start = time.perf_counter()
    model.fit(training.X[train_rows], training.y[train_rows])
    line = {"seed": seed, "epochs": epochs, **_machine_fields(),
            "seconds": round(time.perf_counter() - start, 1), "data": training.fingerprint}
    held, truth = training.X[held_rows], training.y[held_rows]
    origin = pixel_origin_of(model)
    for shift in (0, 2):
        tta = flip_tta(model, shift=shift)
        plain = warped_views(tta, held, origin)
        line[f"s{shift}"] = masked_rmse_px(truth, plain.mean(0))
        for angle in ROTATIONS:
            views = [plain] + [warped_views(tta, held, origin, a) for a in (-angle, angle)]
            line[f"s{shift}_rot{angle}"] = masked_rmse_px(
                truth, np.nanmean(np.concatenate(views), 0))
        views = [plain] + [warped_views(tta, held, origin, factor=f) for f in SCALES]
        line[f"s{shift}_scale5"] = masked_rmse_px(truth, np.nanmean(np.concatenate(views), 0))
    return line


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data")
    p.add_argument("--out", default="benchmarks/tta-views.jsonl")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=60)
    args = p.parse_args(argv)
    line = run(args.data, args.seed, args.epochs)
    append_record(args.out, line)


if __name__ == "__main__":
    main()
