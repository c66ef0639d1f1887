"""h. net8's fp32 training step as a CPU without bf16 or AVX-512 runs it (most laptops and
cloud notebooks): a child process (this module, run with ``python -m``) with oneDNN and ATen
capped at AVX2 (ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2) on two cores (taskset -c
0,1) times today's net8 against the first net8's layers (BNCNN.LAYERS_V1), and the same
first-net8 step uncapped in the parent shows what the cap changes.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import torch

from .common import ROOT, epoch_seconds, faces, kfkd_fit, split
from kfkd_kit.keypoints import image_axis   # a fixed axis: no measuring in a timed fit


AVX2_CAP = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def net8_fp32_steps(quick, rounds=None):
    """{"v1": [ms per step, ...], "now": [...], "capability": ...}: net8's fp32 training step
    (epoch seconds over training batches; augmentation, weight average and its share of
    the validation pass included) with BNCNN.LAYERS_V1 and with today's layers, alternately."""
    from kfkd_kit.net.nets import BNCNN
    n = 384 if quick else 1152
    epochs, rounds = (2, 1) if quick else (3, rounds or 3)
    images, points = faces(n, missing=0.7)
    batches = math.ceil(len(split(n, fraction=0.1)[0]) / 128)
    steps = {"v1": [], "now": [], "capability": torch.backends.cpu.get_cpu_capability(),
             "threads": torch.get_num_threads(), "rows": n, "batches": batches}
    for _ in range(rounds):
        for key, layers in (("v1", BNCNN.LAYERS_V1), ("now", BNCNN.LAYERS)):
            _, times, _ = kfkd_fit("net8", images, points, epochs, "cpu", precision="fp32",
                                   module__layers=layers, flip_axis=image_axis())
            steps[key].append(1000 * epoch_seconds(times) / batches)
    return steps


def run(table, opts):
    quick = opts.quick
    print("h. net8 fp32 step, AVX2-capped child process vs today's layers", flush=True)
    command = [sys.executable, "-m", "benchmarks.bench.h_net8_avx2"]
    if quick:
        command.append("--quick")
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        command = ["taskset", "-c", "0,1"] + command
    env = dict(os.environ, **AVX2_CAP)
    child = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if child.returncode != 0:
        table.note(f"the capped child failed: {child.stderr.strip().splitlines()[-1:]}")
        return
    capped = json.loads(child.stdout.strip().splitlines()[-1])
    uncapped = net8_fp32_steps(quick, rounds=1)
    old, new = min(capped["v1"]), min(capped["now"])
    table.add("net8 fp32 training step, 128 images, AVX2 cap on 2 cores: today's layers "
              "vs the first net8's (BNCNN.LAYERS_V1), ms", new, old, new / old, "≤ 0.5×",
              new / old <= 0.5)
    free = min(uncapped["v1"])
    table.add("the first net8's fp32 step with the AVX2 cap vs without it (what the cap "
              "changes), ms", old, free, old / free)
    table.note(f"Capped child: ATen capability {capped['capability']}, {capped['threads']} "
               f"torch threads, {capped['rows']} rows (10% validation), {capped['batches']} "
               "training batches an epoch; a step is the median epoch after the first over "
               "those batches, best of the rounds (ms per round: first net8 "
               f"{', '.join(f'{v:.0f}' for v in capped['v1'])}; today "
               f"{', '.join(f'{v:.0f}' for v in capped['now'])}). Uncapped: ATen capability "
               f"{uncapped['capability']}.")


if __name__ == "__main__":      # the capped child: one JSON line on stdout
    print(json.dumps(net8_fp32_steps("--quick" in sys.argv[1:])))
