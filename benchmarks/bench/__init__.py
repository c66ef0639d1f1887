"""`make bench`: kfkd's speed against the obvious alternatives, side by side, as ratios.

    python -m benchmarks.bench [--quick] [--parts abcdefghij] [--list] [--out docs/RESULTS.md]

One module per part (``benchmarks/bench/<letter>_<name>.py``, each with ``run(table, opts)``),
and the table ``PARTS`` below drives every one of them:

a. loading a Kaggle-size training.csv: kfkd's loader against the tutorial's pandas code, time
   and peak memory, each reader in a fresh subprocess;
b. a net1 epoch on CPU: kfkd against a plain PyTorch loop over the same tensors;
c. a CNN (net2) epoch on CPU, fp32: kfkd against PyTorch defaults;
d. CUDA only: net1 400 and net5 1000 epochs, kfkd's captured step against an eager loop on
   the device (wall time, ms per step, TFLOP/s, RMSE);
e. a net2 and a net8 training step on CPU in bf16 autocast against fp32;
f. CUDA only: net8 epochs on the device in fp32 and bf16;
g. what make train's per-epoch checkpoints cost a net1 epoch;
h. net8's fp32 step on a CPU capped at AVX2 (a child process): today's layers against the
   first net8's;
i. `kfkd predict`: net8 through onnxruntime against torch, face detection, alignment;
j. net8: two nets side by side (make train MODELS=2) against one.

Each part measures in this one process, alternately (a and h also in child processes).
Each part's rows and notes go to stdout and, atomically and rewritten after every row, to
its own section of --out (``<!-- begin bench-<letter> -->``), with the command and the
machine: a run of some parts replaces only their sections, and a part that measured
nothing (d and f without CUDA) leaves its section as it was. Timings per epoch are the
median over epochs after the first, best of the rounds: the machine may be shared, and the
minimum is the least disturbed estimate.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "docs" / "RESULTS.md"


@dataclass(frozen=True)
class Part:
    module: str          # benchmarks/bench/<module>.py, with run(table, opts)
    title: str           # the section's heading
    cpu_timed: bool      # times the CPU: note how busy it was just before


PARTS = {
    "a": Part("a_loading", "loading a Kaggle-size training.csv", False),
    "b": Part("b_net1_cpu", "a net1 epoch on CPU against a plain PyTorch loop", True),
    "c": Part("c_cnn_cpu", "a CNN (net2) epoch on CPU, fp32, against PyTorch defaults", True),
    "d": Part("d_cuda", "CUDA: net1 and net5, kfkd's captured step against an eager loop", False),
    "e": Part("e_bf16_cpu", "bf16 autocast against fp32 on CPU, net2 and net8", True),
    "f": Part("f_net8_cuda", "CUDA: net8 epochs in fp32 and bf16", False),
    "g": Part("g_checkpoints", "the cost of make train's checkpoints", True),
    "h": Part("h_net8_avx2", "net8 in fp32 on a CPU capped at AVX2", True),
    "i": Part("i_predict", "kfkd predict: onnxruntime against torch, detection, alignment", True),
    "j": Part("j_side_by_side", "net8: two nets side by side against one", True),
}


def load_part(part):
    """The module of ``part`` (imported on demand: a part's imports are its own)."""
    return importlib.import_module(f"{__name__}.{part.module}")


def section_name(letter):
    return f"bench-{letter}"


def parser():
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer rows, epochs and rounds")
    p.add_argument("--parts", default="".join(PARTS),
                   help="which parts, e.g. 'bc' (default: %(default)s)")
    p.add_argument("--list", action="store_true", help="list the parts and exit")
    p.add_argument("--out", default=str(DEFAULT_OUT),
                   help="Markdown file whose bench-<part> sections get the results, '-' for "
                        "none (default: docs/RESULTS.md)")
    p.add_argument("--eager-epochs", type=int, default=None,
                   help="d: run the eager loop for this many epochs and scale (default: all)")
    p.add_argument("--compile-epochs", type=int, default=0,
                   help="d: also time the eager net5 loop under torch.compile for this many "
                        "epochs (default: 0, not)")
    p.add_argument("--cuda-device", default="cuda",
                   help="d, f: the device; 'cpu' only tries their code, tiny and meaningless "
                        "(default: %(default)s)")
    p.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                   help="before each part wait up to SECONDS for the CPUs to be idle, on a "
                        "shared machine (default: 0, no wait)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch's intra-op threads (default: torch's choice, all cores)")
    return p


def section(letter, table, info, command, seconds, done):
    """The Markdown of part ``letter``'s section of the results file."""
    part = PARTS[letter]
    status = f"{seconds:.0f} s" if done else f"INCOMPLETE: cut short after {seconds:.0f} s"
    return "\n".join([
        f"### Part {letter}: {part.title}", "",
        f"Written by benchmarks/bench/{part.module}.py, through `{command}` "
        f"({status}); ratios are kfkd / baseline, measured side by side in one run.", "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()), "",
        table.markdown(parts=letter), ""])


def main(argv=None):
    args = parser().parse_args(argv)
    if args.list:
        for letter, part in PARTS.items():
            print(f"{letter}  {part.title}  (benchmarks/bench/{part.module}.py)")
        return 0
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser().error(f"unknown parts {''.join(sorted(unknown))}; choose from {''.join(PARTS)}")

    import torch

    from kfkd_kit.utils.atomic import write_section

    from .common import Table, cpu_busy, machine, wait_until_quiet
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine()
    print(" | ".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    command = "python -m benchmarks.bench " + " ".join(argv if argv is not None else sys.argv[1:])
    started = {}

    def save(table, letter, done=False):
        # a part that measured nothing (no CUDA here) keeps the section an earlier run wrote
        if args.out == "-" or not table.has_rows(letter):
            return
        took = time.perf_counter() - started[letter]
        write_section(args.out, section_name(letter),
                      section(letter, table, info, command.strip(), took, done))

    table = Table(on_change=lambda table, letter: save(table, letter))
    for letter in sorted(set(args.parts)):
        part = PARTS[letter]
        started[letter] = time.perf_counter()
        if part.cpu_timed or args.wait_quiet:
            busy = wait_until_quiet(args.wait_quiet) if args.wait_quiet else cpu_busy()
            table.note(letter, f"CPUs {100 * busy:.0f}% busy (other processes) just before "
                               "this part.")
        load_part(part).run(table.part(letter), args)
        save(table, letter, done=True)
    print()
    print(table.markdown())
    if args.out != "-":
        print(f"wrote the sections of parts {''.join(sorted(set(args.parts)))} with results "
              f"into {args.out}")
    return 0
