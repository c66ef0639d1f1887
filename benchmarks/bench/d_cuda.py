"""d. CUDA only: net1 400 epochs and net5 1000 epochs, wall time, ms per step and achieved
TFLOP/s, kfkd's captured step against an eager loop on the device, and the RMSE of each
(bf16, channels_last and skorch's plain path too; torch.compile with --compile-epochs).
"""
from __future__ import annotations

import math

import torch

from kfkd_kit import configs
from kfkd_kit.keypoints import SCALE
from kfkd_kit.net.nets import CNN

from .common import (KAGGLE_COMPLETE, NET5_ROWS, as_tensors, epoch_seconds, faces, flops_per_row,
                     kfkd_fit, plain_loop, split)


def run(table, opts):
    quick, eager_epochs, compile_epochs, device = (opts.quick, opts.eager_epochs,
                                                   opts.compile_epochs, opts.cuda_device)
    print("d. CUDA", flush=True)
    if device == "cuda" and not torch.cuda.is_available():
        table.note("skipped: no CUDA device here (run benchmarks/gpu_check.sh on a GPU machine).")
        return
    specs = [("net1", KAGGLE_COMPLETE, 0.0, 100 if quick else 400, "≤ 2 s"),
             ("net5", NET5_ROWS, 0.7, 100 if quick else 1000, "≤ 10 s")]
    if device == "cpu":  # only to try this code without a GPU: tiny and meaningless
        specs = [("net1", 300, 0.0, 3, "≤ 2 s"), ("net5", 300, 0.7, 2, "≤ 10 s")]
    for name, n, missing, epochs, target in specs:
        config = configs.get_config(name)
        images, points = faces(n, missing=missing)
        train_rows, valid_rows = split(n)
        X, y = as_tensors(images, points, device)
        steps = epochs * math.ceil(len(train_rows) / config.batch_size)
        torch.manual_seed(0)
        forward, training = flops_per_row(config.module(**config.module_params).to(device))
        flops = epochs * (len(train_rows) * training + len(valid_rows) * forward)
        limit = target.split()[-2]

        # warm-up: CUDA context, cuDNN/cuBLAS handles and autotuning, outside the timings
        graphs = {"fast_path": True} if device == "cuda" else {}  # graphs or an error, no fallback
        kfkd_fit(name, images[:300], points[:300], 2, device, **graphs)

        # kfkd's captured step, as configured (fp32)
        pipe, _, wall = kfkd_fit(name, images, points, epochs, device, **graphs)
        rmse = math.sqrt(pipe.named_steps["net"].history[-1, "valid_loss"]) * SCALE
        del pipe
        # the eager loop on the device, same module, split, schedules and flips
        e_epochs = min(epochs, eager_epochs or epochs)
        torch.manual_seed(0)
        module = config.module(**config.module_params).to(device)
        lr = config.lr_schedule or (config.lr, config.lr)
        momentum = config.momentum_schedule or (config.momentum, config.momentum)
        out = plain_loop(module, X, y, train_rows, valid_rows, e_epochs, lr=lr, momentum=momentum,
                         flip=config.flip)
        eager_wall = (out["times"][-1] - out["times"][0]) * epochs / e_epochs
        eager_rmse = math.sqrt(out["valid_loss"]) * SCALE
        scaled = "" if e_epochs == epochs else f" (from {e_epochs} epochs, scaled)"
        table.add(f"{name} {epochs} epochs ({len(train_rows)} rows), s, kfkd graph vs eager loop{scaled}",
                  wall, eager_wall, wall / eager_wall, target, wall <= float(limit))
        table.add(f"{name} ms per step (graph / eager loop)", 1e3 * wall / steps, 1e3 * eager_wall / steps,
                  wall / eager_wall)
        table.add(f"{name} achieved TFLOP/s (graph / eager loop)", flops / wall / 1e12,
                  flops / eager_wall / 1e12, None)
        table.add(f"{name} final valid RMSE px (graph / eager loop)", rmse,
                  eager_rmse if not scaled else None, None, "same within noise")
        table.note(f"{name}: {training / 1e6:.0f} MFLOP per training row (forward {forward / 1e6:.0f}); "
                   "wall times include capture (graph) and exclude a 2-epoch warm-up fit.")

        variants = [("graph bf16", {"precision": "bf16"})]
        if config.module is CNN:
            variants += [("graph fp32 channels_last", {"module__channels_last": True}),
                         ("graph bf16 channels_last", {"precision": "bf16", "module__channels_last": True})]
        for label, params in variants:
            pipe, _, vwall = kfkd_fit(name, images, points, epochs, device, **graphs, **params)
            vrmse = math.sqrt(pipe.named_steps["net"].history[-1, "valid_loss"]) * SCALE
            del pipe
            table.add(f"{name} kfkd {label}: s, and RMSE px {vrmse:.2f}",
                      vwall, eager_wall, vwall / eager_wall, target, vwall <= float(limit))
        # skorch's plain path with the data resident (fast_path=False), fewer epochs, scaled
        s_epochs = max(2, epochs // 10)
        _, times, _ = kfkd_fit(name, images, points, s_epochs, device, fast_path=False)
        skorch_wall = (times[-1] - times[0]) * epochs / s_epochs
        table.add(f"{name} kfkd fast_path=False (skorch, resident data), s (from {s_epochs} epochs, scaled)",
                  skorch_wall, eager_wall, skorch_wall / eager_wall)
        if compile_epochs and name == "net5":
            torch.manual_seed(0)
            module = torch.compile(config.module(**config.module_params).to(device))
            try:
                out = plain_loop(module, X, y, train_rows, valid_rows, compile_epochs, lr=lr,
                                 momentum=momentum, flip=config.flip)
            except Exception as exc:  # noqa: BLE001 - a comparison only
                table.note(f"torch.compile failed: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            first = out["times"][1] - out["times"][0]
            steady = epoch_seconds(out["times"])
            total = first + steady * (epochs - 1)
            table.add(f"{name} eager loop + torch.compile: first epoch {first:.1f} s (compiling), "
                      f"then {1e3 * steady:.1f} ms/epoch; {epochs} epochs, s (scaled)",
                      total, eager_wall, total / eager_wall)
