"""c. A CNN (net2) epoch on CPU, fp32: kfkd against PyTorch defaults (the tutorial's
conv-ReLU-pool blocks in NCHW, a DataLoader over a TensorDataset).
"""
from __future__ import annotations

import torch

from .common import TutorialCNN, as_tensors, epoch_seconds, faces, kfkd_fit, plain_loop, split


def run(table, opts):
    quick = opts.quick
    print("c. CNN (net2) epoch on CPU, fp32", flush=True)
    n = 320 if quick else 640
    epochs, rounds = (2, 1) if quick else (3, 2)
    images, points = faces(n, missing=0.7)
    train_rows, valid_rows = split(n)
    X, y = as_tensors(images, points, "cpu")
    kfkd, default, no_malloc = [], [], []
    for _ in range(rounds):
        torch.manual_seed(0)
        default.append(epoch_seconds(plain_loop(TutorialCNN(), X, y, train_rows, valid_rows, epochs,
                                                data_loader=True)["times"]))
        _, times, _ = kfkd_fit("net2", images, points, epochs, "cpu")
        kfkd.append(epoch_seconds(times))
        _, times, _ = kfkd_fit("net2", images, points, epochs, "cpu", fast_path=False)
        no_malloc.append(epoch_seconds(times))
    k, d, m = min(kfkd), min(default), min(no_malloc)
    table.add(f"CNN (net2) epoch on CPU, fp32 ({len(train_rows)} + {len(valid_rows)} rows), s",
              k, d, k / d, "≤ 0.5×", k / d <= 0.5)
    table.add("the same, kfkd with fast_path=False (no malloc setting), s", m, d, m / d)
    table.note(f"Median epoch after the first of {epochs}, best of {rounds} rounds (rounds: kfkd "
               f"{', '.join(f'{v:.2f}' for v in kfkd)}; fast_path=False "
               f"{', '.join(f'{v:.2f}' for v in no_malloc)}; defaults "
               f"{', '.join(f'{v:.2f}' for v in default)} s). Defaults: conv-ReLU-pool blocks in "
               "NCHW, DataLoader(TensorDataset, batch_size=128, shuffle=True), torch.optim.SGD. "
               "kfkd: channels_last, pool before ReLU, resident batches, and (fast path on) freed "
               "memory kept for reuse during the fit (glibc). torch.compile was tried and not "
               "kept: ~40 s to compile here, then slower epochs than eager channels_last.")
