"""f. CUDA only: net8 epochs on the device in fp32 and in bf16 (skorch's plain path).
"""
from __future__ import annotations

import math

import torch

from kfkd_kit.keypoints import SCALE

from .common import NET5_ROWS, epoch_seconds, faces, kfkd_fit


def run(table, opts):
    quick, device = opts.quick, opts.cuda_device
    print("f. net8 on CUDA", flush=True)
    if device == "cuda" and not torch.cuda.is_available():
        table.note("skipped: no CUDA device here (run benchmarks/gpu_check.sh on a GPU machine).")
        return
    n, epochs = (NET5_ROWS, 10 if quick else 30) if device == "cuda" else (300, 2)
    images, points = faces(n, missing=0.7)
    kfkd_fit("net8", images[:300], points[:300], 2, device)  # warm-up: context, cuDNN autotuning
    walls = {}
    for precision in ("fp32", "bf16"):
        pipe, times, wall = kfkd_fit("net8", images, points, epochs, device, precision=precision)
        rmse = math.sqrt(pipe.named_steps["net"].history[-1, "valid_loss"]) * SCALE
        walls[precision] = epoch_seconds(times)
        table.add(f"net8 {precision} on {device}: s per epoch ({n} rows, {epochs} epochs, "
                  f"valid RMSE {rmse:.2f} px)", walls[precision], None, None)
    table.add(f"net8 bf16 vs fp32 epoch on {device}, s", walls["bf16"], walls["fp32"],
              walls["bf16"] / walls["fp32"])
    table.note("net8 runs skorch's plain path on CUDA (its augmentation is outside the captured "
               "step); per-epoch seconds are the median after the first epoch.")
