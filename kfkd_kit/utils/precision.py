"""Which number format a net computes in: fp32, or bf16 autocast where the hardware has it.

bf16 halves the bytes every convolution moves and, on CPUs with AMX or AVX512-BF16
instructions, about halves a CNN's training step (``make bench`` measures it). Elsewhere
bf16 is emulated and slower, so ``"auto"`` picks it only where the CPU (or GPU) says it
has native support, and otherwise says once that it stays in fp32.

There is no "tf32" format: it once existed for the CUDA-graph step only, and elsewhere
trained in fp32 without saying so. On CUDA, "fp32" leaves PyTorch's own TF32 settings as
they are (by default cuDNN's convolutions may use TF32 on recent GPUs, matrix products
do not); bf16 is the faster format there and runs on every path.
"""
from __future__ import annotations

import os

import contextlib
import warnings

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def _cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_bf16_support() -> str | None:
    """"AMX", "AVX512-BF16" (the CPU computes bf16 natively), or None. None too when
    oneDNN is capped below its bf16 instructions (``ONEDNN_MAX_CPU_ISA=AVX2``, say, to see
    what a CPU without them does): its kernels would then only emulate bf16."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if cap and cap not in ("ALL", "DEFAULT") and "BF16" not in cap and "AMX" not in cap:
        return None
    probes = (("AMX", "_is_amx_tile_supported", "amx_bf16"),
              ("AVX512-BF16", "_is_avx512_bf16_supported", "avx512_bf16"))
    flags = None
    for name, probe, flag in probes:
        check = getattr(torch.cpu, probe, None)
        if check is not None:
            if check():
                return name
            continue
        flags = _cpu_flags() if flags is None else flags  # older torch: read the flags
        if flag in flags:
            return name
    return None


def bf16_support(device) -> str | None:
    """What makes bf16 fast on ``device`` ("AMX", "AVX512-BF16", "CUDA"), or None."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        return "CUDA" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return cpu_bf16_support()
    return None


_said = set()


def resolve(precision, device) -> str:
    """The format a fit on ``device`` will use: "fp32" or "bf16".

    "auto" is "bf16" where ``bf16_support`` finds native support, else "fp32" (said once
    per process and device type). An explicit "bf16" is honoured even without support.
    """
    if precision not in PRECISIONS:
        why = (" (tf32 is no longer a precision: use fp32, or bf16 for speed)"
               if precision == "tf32" else "")
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}{why}")
    if precision != "auto":
        return precision
    kind = torch.device(device or "cpu").type
    if bf16_support(device):
        return "bf16"
    if kind not in _said:
        _said.add(kind)
        warnings.warn(f"precision='auto': this {kind.upper()} has no native bf16 "
                      "(AMX, AVX512-BF16 or a recent GPU), so training stays in fp32",
                      RuntimeWarning, stacklevel=2)
    return "fp32"


def autocast(precision, device):
    """A context that runs the forward pass in ``precision`` ("bf16": autocast)."""
    if precision == "bf16":
        return torch.autocast(torch.device(device or "cpu").type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
