"""e. A training step of net2 and net8 on CPU in bf16 autocast against fp32.
"""
from __future__ import annotations

import math

from .common import epoch_seconds, faces, kfkd_fit, split


def run(table, opts):
    quick = opts.quick
    from kfkd_kit.utils.precision import cpu_bf16_support
    support = cpu_bf16_support()
    print(f"e. fp32 vs bf16 on CPU (native bf16: {support or 'none'})", flush=True)
    n = 320 if quick else 640
    epochs, rounds = (2, 1) if quick else (3, 2)
    images, points = faces(n, missing=0.7)
    train_rows, _ = split(n)
    batches = math.ceil(len(train_rows) / 128)
    for name in ("net2", "net8"):
        seconds = {"fp32": [], "bf16": []}
        for _ in range(rounds):
            for precision in seconds:
                _, times, _ = kfkd_fit(name, images, points, epochs, "cpu", precision=precision,
                                       batch_size=128)
                seconds[precision].append(epoch_seconds(times) / batches)
        f32, b16 = min(seconds["fp32"]), min(seconds["bf16"])
        amx = support == "AMX"
        table.add(f"{name} training step on CPU, 128 images, bf16 autocast vs fp32, ms",
                  1000 * b16, 1000 * f32, b16 / f32, "≤ 0.55× (with AMX)" if amx else None,
                  (b16 / f32 <= 0.55) if amx else None)
    table.note(f"This CPU's native bf16: {support or 'none'} (precision.cpu_bf16_support). "
               f"A step is an epoch's seconds (median after the first of {epochs}, best of "
               f"{rounds} rounds) over its {batches} training batches of {len(train_rows)} rows, "
               "its validation pass included. net8 includes its augmentation, one-cycle and weight "
               "average; the 0.55x target is for CPUs with AMX.")
