"""What a result was produced on: the CPU, GPU and library versions, for results tables.

    cpu_model()          -> str          the CPU's model name
    library_versions()   -> dict         python, torch, skorch, scikit-learn, numpy, pandas
    gpu_name()           -> str | None   CUDA device 0's name, None without CUDA
    machine()            -> dict         all of it, for a "Machine:" line or a JSON
    describe_machine()   -> str          "CPU model, N cores, ISA, GPU name"

torch, skorch, scikit-learn and pandas are imported inside the functions that need them,
so importing this module (or kfkd_kit.data) does not pull them in.
"""
from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), for results tables."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "?"


def library_versions() -> dict:
    """The versions of Python and of the libraries a result depends on."""
    import numpy
    import pandas
    import skorch
    import sklearn
    import torch
    return {"python": platform.python_version(), "torch": torch.__version__,
            "skorch": skorch.__version__, "scikit-learn": sklearn.__version__,
            "numpy": numpy.__version__, "pandas": pandas.__version__}


def gpu_name() -> str | None:
    """The name of CUDA device 0, or None where torch sees no CUDA device."""
    import torch
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def machine() -> dict:
    """cpu, cores, torch threads, gpu (None without CUDA), native bf16 on the CPU ("AMX",
    "AVX512-BF16" or None, from precision.cpu_bf16_support) and library_versions()."""
    import torch

    from .precision import cpu_bf16_support
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch threads": torch.get_num_threads(),
            "gpu": gpu_name(), "native bf16": cpu_bf16_support(), **library_versions()}


def describe_machine() -> str:
    """One line: "CPU model, N cores, its ISA" and ", GPU name" where there is one. The ISA is
    the CPU's native bf16 (AMX, AVX512-BF16, or none) and the kernels ATen runs (AVX512, AVX2:
    what ATEN_CPU_CAPABILITY caps), since the same model's speed depends on both."""
    import torch

    from .precision import cpu_bf16_support
    gpu = gpu_name()
    isa = (f"{cpu_bf16_support() or 'no native bf16'}, "
           f"ATen {torch.backends.cpu.get_cpu_capability()}")
    return f"{cpu_model()}, {os.cpu_count()} cores, {isa}" + (f", GPU {gpu}" if gpu else "")
