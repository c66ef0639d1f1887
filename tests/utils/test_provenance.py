"""kfkd_kit.utils.provenance: the machine and library versions that results tables report."""
import os
import subprocess
import sys

import pytest
import torch

from kfkd_kit.utils import precision, provenance


def test_library_versions_name_every_library():
    versions = provenance.library_versions()
    assert set(versions) == {"python", "torch", "skorch", "scikit-learn", "numpy", "pandas"}
    assert versions["torch"] == torch.__version__
    assert all(isinstance(v, str) and v for v in versions.values())


def test_cpu_model_reads_proc_cpuinfo_and_falls_back(monkeypatch):
    assert isinstance(provenance.cpu_model(), str) and provenance.cpu_model()

    def no_file(*args, **kwargs):
        raise OSError("no /proc here")
    monkeypatch.setattr(provenance, "open", no_file, raising=False)  # the module's open()
    monkeypatch.setattr(provenance.platform, "processor", lambda: "")
    monkeypatch.setattr(provenance.platform, "machine", lambda: "riscv64")
    assert provenance.cpu_model() == "riscv64"


def test_machine_and_its_one_line_description(monkeypatch):
    monkeypatch.setattr(provenance, "cpu_model", lambda: "Test CPU 9000")
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: "AMX")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    info = provenance.machine()
    assert info["cpu"] == "Test CPU 9000" and info["cores"] == os.cpu_count()
    assert info["torch threads"] == torch.get_num_threads()
    assert info["gpu"] is None and info["native bf16"] == "AMX"
    assert set(provenance.library_versions()) <= set(info)
    assert provenance.describe_machine() == f"Test CPU 9000, {os.cpu_count()} cores, AMX, ATen AVX2"
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: None)
    assert provenance.describe_machine().endswith("cores, no native bf16, ATen AVX2")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "NVIDIA Fake")
    assert provenance.gpu_name() == "NVIDIA Fake"
    assert provenance.describe_machine() == (f"Test CPU 9000, {os.cpu_count()} cores, "
                                             "no native bf16, ATen AVX2, GPU NVIDIA Fake")


@pytest.mark.slow
def test_importing_provenance_or_data_does_not_import_torch():
    code = ("import sys, kfkd_kit.utils.provenance, kfkd_kit.data; "
            "print(sorted(m for m in ('torch', 'pandas', 'skorch', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    loaded = eval(out.stdout)
    assert "torch" not in loaded and "skorch" not in loaded and "sklearn" not in loaded
