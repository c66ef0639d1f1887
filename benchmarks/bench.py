"""`make bench`: kfkd's speed against the obvious alternatives, side by side, as ratios.

    python -m benchmarks.bench [--quick] [--parts abcdefgh] [--out benchmarks/RESULTS.md]

Parts (each measured in this one process, alternately, except loading which runs each
reader in a fresh subprocess so that its time is cold and its peak memory its own):

a. loading a Kaggle-size training.csv (7049 rows, synthetic, generated once into
   build/bench/): kfkd's loader (every load parses the file) against the tutorial's
   ``pandas.read_csv`` + ``np.fromstring`` per row; peak resident memory of each;
b. net1 seconds per epoch on CPU: kfkd (skorch, resident batches) against a plain
   PyTorch loop over the same tensors (batch 128, Nesterov SGD, same masked loss, the
   same validation pass);
c. a CNN (net2) epoch on CPU, fp32: kfkd against PyTorch defaults (the tutorial's
   conv-ReLU-pool blocks in NCHW, a DataLoader over a TensorDataset);
d. CUDA only: net1 400 epochs and net5 1000 epochs wall time, ms per step and achieved
   TFLOP/s, kfkd's captured step against an eager loop on the device, and the RMSE of each;
e. a training step of net2 and net8 on CPU in bf16 autocast against fp32;
h. net8's fp32 training step as a CPU without bf16 or AVX-512 runs it (most laptops and
   cloud notebooks): a child process with oneDNN and ATen capped at AVX2
   (ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2) on two cores (taskset -c 0,1)
   times today's net8 against the first net8's layers (BNCNN.LAYERS_V1), and the same
   first-net8 step uncapped in this process shows what the cap changes;
i. `kfkd predict`: net8's keypoints for a batch of face crops, faces per second through
   onnxruntime (the exported graph) against torch (the fitted net, in its own precision);
   face detection per photo (MTCNN, Haar) and alignment per face timed separately.

The table goes to stdout and (atomically, with the machine it ran on) to --out.
Timings per epoch are the median over epochs after the first, best of the rounds: the
machine may be shared, and the minimum is the least disturbed estimate.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np
import torch
from skorch.callbacks import Callback
from torch import nn

from kfkd_kit import configs
from kfkd_kit.utils import provenance
from kfkd_kit.data import synthetic
from kfkd_kit.utils.atomic import atomic_write, write_section
from kfkd_kit.net.batches import flip_half
from kfkd_kit.keypoints import COMMON_KEYPOINTS, N_TARGETS, SCALE, columns_of, to_unit
from kfkd_kit.net.losses import MaskedMSELoss
from kfkd_kit.net.nets import CNN

DATA_DIR = ROOT / "build" / "bench"
KAGGLE_ROWS = 7049          # rows of Kaggle's training.csv
KAGGLE_COMPLETE = 2140      # of which complete (net1 trains on these)
NET5_ROWS = 2770            # the net5 measurement


# -- helpers ---------------------------------------------------------------------------------
def machine() -> dict:
    """provenance.machine() (no gpu entry without CUDA) and the local date and time."""
    info = provenance.machine()
    if info["gpu"] is None:
        del info["gpu"]
    info["native bf16"] = info["native bf16"] or "none"
    info["date"] = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return info


def cpu_busy(seconds=1.0):
    """Fraction of all CPUs busy (others' work included) over ``seconds``, from /proc/stat."""
    def sample():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait
    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except OSError:
        return float("nan")
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def wait_until_quiet(limit_s, busy=0.1):
    """Wait (at most ``limit_s``) until the other processes leave the CPUs nearly idle; the
    machine is shared and two busy threads elsewhere slow torch's OpenMP threads ~10x."""
    deadline = time.monotonic() + limit_s
    while True:
        now = cpu_busy()
        if now <= busy or time.monotonic() >= deadline:
            return now
        time.sleep(2)


def faces(n, seed=0, missing=0.0):
    """n synthetic faces (uint8 images, float32 pixel keypoints); a ``missing`` fraction of
    rows keeps only the 8 common-keypoint columns, like Kaggle's."""
    images, points = synthetic.make_faces(n, seed)
    points = points.astype(np.float32)
    if missing:
        rng = np.random.default_rng(seed + 1)
        rows = rng.random(n) < missing
        drop = np.setdiff1d(np.arange(N_TARGETS), columns_of(COMMON_KEYPOINTS))
        points[np.ix_(rows, drop)] = np.nan
    return images, points


def split(n, seed=0, fraction=0.2):
    """The row indices of KeypointNet's own (seeded) train/valid split."""
    from skorch.dataset import Dataset, ValidSplit
    train, valid = ValidSplit(fraction, random_state=seed)(Dataset(np.zeros((n, 1), np.float32), None))
    return np.asarray(train.indices), np.asarray(valid.indices)


def as_tensors(images, points, device):
    X = torch.as_tensor(images.astype(np.float32) / np.float32(255.0), device=device)
    y = torch.as_tensor(to_unit(points), device=device)
    return X, y


class Clock(Callback):
    """Wall time at the start of training and at each epoch's end."""

    def on_train_begin(self, net, **kwargs):
        self.times = [time.perf_counter()]

    def on_epoch_end(self, net, **kwargs):
        if net.device != "cpu" and torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())


def epoch_seconds(times):
    """Median seconds per epoch, the first (warm-up) epoch left out where there are others."""
    d = np.diff(times)
    return float(np.median(d[1:] if len(d) > 1 else d))


def kfkd_fit(name, images, points, epochs, device, precision="fp32", **params):
    """Fit a named configuration; returns (pipeline, per-epoch clock times, wall seconds).
    fp32 unless asked: the baselines it is compared with are fp32."""
    pipe = configs.build(name, epochs=epochs, device=device, verbose=0, precision=precision)
    if params:
        pipe.set_params(**{f"net__{k}": v for k, v in params.items()})
    net = pipe.named_steps["net"]
    clock = Clock()
    net.set_params(callbacks=list(net.callbacks) + [("clock", clock)])
    sync(device)
    start = time.perf_counter()
    pipe.fit(images, points)
    sync(device)
    return pipe, clock.times, time.perf_counter() - start


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def plain_loop(module, X, y, train_rows, valid_rows, epochs, *, batch_size=128, lr=(0.01, 0.01),
               momentum=(0.9, 0.9), flip=False, data_loader=False, index_select=False):
    """A plain PyTorch training loop: Nesterov SGD, masked MSE, a validation pass per epoch.

    Batches index tensors already on the device (no per-step sync: losses are summed on
    the device and read once per epoch), or with ``data_loader`` come from PyTorch's
    default DataLoader over a TensorDataset (losses read per batch, as tutorials do).
    Linear lr/momentum schedules as (start, stop). Batches are gathered with ``X[rows]``,
    as usual, or with ``index_select`` (kfkd's way; about 3x faster on CPU).
    Returns per-epoch times and losses.
    """
    from torch.utils.data import DataLoader, TensorDataset
    device = X.device
    Xtr, ytr = X[torch.as_tensor(train_rows, device=device)], y[torch.as_tensor(train_rows, device=device)]
    Xva, yva = X[torch.as_tensor(valid_rows, device=device)], y[torch.as_tensor(valid_rows, device=device)]
    optimizer = torch.optim.SGD(module.parameters(), lr=lr[0], momentum=momentum[0], nesterov=True)
    criterion = MaskedMSELoss()
    n = len(Xtr)
    if data_loader:
        train_loader = DataLoader(TensorDataset(Xtr, ytr), batch_size=batch_size, shuffle=True)
        valid_loader = DataLoader(TensorDataset(Xva, yva), batch_size=batch_size)
    sync(device)
    times = [time.perf_counter()]
    train_loss = valid_loss = None
    for epoch in range(epochs):
        f = epoch / (epochs - 1) if epochs > 1 else 0.0
        for group in optimizer.param_groups:
            group["lr"] = lr[0] + (lr[1] - lr[0]) * f
            group["momentum"] = momentum[0] + (momentum[1] - momentum[0]) * f
        module.train()
        if data_loader:
            batches = train_loader
        else:
            order = torch.randperm(n, device=device)
            if index_select:
                batches = ((Xtr.index_select(0, rows), ytr.index_select(0, rows))
                           for rows in order.split(batch_size))
            else:
                batches = ((Xtr[rows], ytr[rows]) for rows in order.split(batch_size))
        total = 0.0
        for Xb, yb in batches:
            if flip:
                Xb, yb = flip_half(Xb, yb)
            optimizer.zero_grad()
            loss = criterion(module(Xb), yb)
            loss.backward()
            optimizer.step()
            total = total + (loss.item() if data_loader else loss.detach()) * len(Xb)
        module.eval()
        vtotal = 0.0
        with torch.no_grad():
            pieces = valid_loader if data_loader else zip(Xva.split(batch_size), yva.split(batch_size))
            for Xb, yb in pieces:
                loss = criterion(module(Xb), yb)
                vtotal = vtotal + (loss.item() if data_loader else loss) * len(Xb)
        train_loss, valid_loss = float(total) / n, float(vtotal) / len(Xva)
        times.append(time.perf_counter())
    return {"times": times, "train_loss": train_loss, "valid_loss": valid_loss}


def flops_per_row(module):
    """(forward FLOPs, training FLOPs) per row: 2 per multiply-add of each Linear/Conv2d;
    training = forward + backward (2x forward, less the first layer's input gradient)."""
    counts = []

    def hook(layer, inputs, output):
        if isinstance(layer, nn.Linear):
            counts.append(2 * layer.in_features * layer.out_features)
        else:
            kh, kw = layer.kernel_size
            counts.append(2 * layer.in_channels // layer.groups * kh * kw * output[0].numel())

    hooks = [m.register_forward_hook(hook) for m in module.modules()
             if isinstance(m, (nn.Linear, nn.Conv2d))]
    device = next(module.parameters()).device
    with torch.no_grad():
        module(torch.zeros(1, 9216, device=device))
    for h in hooks:
        h.remove()
    forward = sum(counts)
    return forward, 3 * forward - counts[0]


class TutorialCNN(nn.Module):
    """The CNN as PyTorch's defaults give it: conv-ReLU-pool blocks, NCHW (part c's baseline)."""

    def __init__(self, filters=(32, 64, 128), kernels=(3, 2, 2), dense=(500, 500)):
        super().__init__()
        blocks, channels, side = [], 1, 96
        for n_filters, kernel in zip(filters, kernels):
            blocks += [nn.Conv2d(channels, n_filters, kernel), nn.ReLU(), nn.MaxPool2d(2)]
            channels, side = n_filters, (side - kernel + 1) // 2
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * side * side, dense[0]), nn.ReLU(),
                                  nn.Linear(dense[0], dense[1]), nn.ReLU(), nn.Linear(dense[1], N_TARGETS))

    def forward(self, X):
        return self.head(self.features(X.reshape(len(X), 1, 96, 96)))


class Table:
    """The results; ``save`` (called after every row, so a run cut short keeps what it
    measured) writes them as Markdown."""

    def __init__(self, save=None):
        self.rows = []
        self.notes = []
        self.save = save or (lambda table: None)

    def add(self, part, what, kfkd, baseline=None, ratio=None, target=None, met=None):
        self.rows.append((part, what, kfkd, baseline, ratio, target, met))
        print(f"  {part} | {what} | {_fmt(kfkd)} | {_fmt(baseline)} | {_fmt(ratio)} | "
              f"{target or ''} | {'' if met is None else ('yes' if met else 'NO')}", flush=True)
        self.save(self)

    def note(self, text):
        self.notes.append(text)
        self.save(self)

    COLUMNS = ("part", "measure", "kfkd", "baseline", "kfkd / baseline", "target", "met")

    def markdown(self):
        import pandas as pd
        cells = [(part, what, _fmt(kfkd), _fmt(baseline), _fmt(ratio), target or "",
                  "" if met is None else ("yes" if met else "**no**"))
                 for part, what, kfkd, baseline, ratio, target, met in self.rows]
        # cells are text already (_fmt): tabulate must not parse and reformat them as numbers
        return pd.DataFrame(cells, columns=self.COLUMNS, dtype=object).to_markdown(
            index=False, disable_numparse=True)


def _fmt(value):
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 0.01:
            return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
        return f"{value:.2g}"
    return str(value)


# -- a. loading ------------------------------------------------------------------------------
def kaggle_size_csv(rows=KAGGLE_ROWS):
    """build/bench/kaggle<rows>/training.csv: synthetic, Kaggle's layout and missing rate."""
    folder = DATA_DIR / f"kaggle{rows}"
    path = folder / "training.csv"
    if not path.is_file():
        print(f"  generating {path} ({rows} rows) ...", flush=True)
        missing = 1 - KAGGLE_COMPLETE / KAGGLE_ROWS
        synthetic.write_kaggle_dataset(folder, n_train=rows, n_test=0, seed=0,
                                       missing_fraction=missing)
    return folder


_CHILD = textwrap.dedent("""
    import json, resource, sys, time, warnings
    sys.path.insert(0, {root!r})
    import numpy as np
    import pandas as pd
    from kfkd_kit import data
    def status_mb(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    def rss_mb():
        return status_mb("VmRSS")
    folder = {folder!r}
    before = rss_mb()
    start = time.perf_counter()
    if {what!r} == "tutorial":
        warnings.simplefilter("ignore")
        df = pd.read_csv(folder + "/training.csv")
        df["Image"] = df["Image"].apply(lambda im: np.fromstring(im, sep=" "))
        X = np.vstack(df["Image"].values) / 255.
        X = X.astype(np.float32)
        y = df[df.columns[:-1]].values
        y = ((y - 48) / 48).astype(np.float32)
    else:
        d = data.load_training(folder)
        X, y = d.X, d.y
    seconds = time.perf_counter() - start
    # VmHWM, not ru_maxrss: on Linux ru_maxrss carries the parent's peak across fork + exec
    peak = status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({{"seconds": seconds, "peak_mb": peak, "before_mb": before,
                      "shape": list(X.shape), "dtype": str(X.dtype)}}))
""")


def load_in_child(folder, what):
    code = _CHILD.format(root=str(ROOT), folder=str(folder), what=what)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def part_loading(table, quick):
    print("a. loading", flush=True)
    folder = kaggle_size_csv()
    size_mb = (folder / "training.csv").stat().st_size / 2 ** 20
    rounds = 1 if quick else 2
    tutorial, cold = [], []
    for _ in range(rounds):
        tutorial.append(load_in_child(folder, "tutorial"))
        cold.append(load_in_child(folder, "kfkd"))
    best = lambda runs: min(runs, key=lambda r: r["seconds"])
    t, c = best(tutorial), best(cold)
    table.add("a", f"load training.csv ({KAGGLE_ROWS} rows, {size_mb:.0f} MB), cold, s",
              c["seconds"], t["seconds"], c["seconds"] / t["seconds"], "≤ 1.5 s", c["seconds"] <= 1.5)
    tutorial_peak = max(r["peak_mb"] for r in tutorial)
    peak = max(r["peak_mb"] for r in cold)
    table.add("a", "peak resident memory of the loading process, cold, MB", peak,
              tutorial_peak, peak / tutorial_peak, "≤ 1 GB", peak <= 1024)
    table.note(f"a. Each reader in a fresh `python -c` subprocess (best of {rounds}); baseline = "
               "the tutorial's `read_csv` + `np.fromstring(sep=' ')` per row + `np.vstack` / 255; "
               f"kfkd X is {c['dtype']} {tuple(c['shape'])}. Peak = VmHWM of the process "
               f"(interpreter and imports included: {c['before_mb']:.0f} MB before loading).")


# -- b. net1 epoch on CPU --------------------------------------------------------------------
def paired(a, b):
    """kfkd / baseline: the median of the per-round ratios (each round runs both back to
    back, so a round disturbed by other processes is disturbed for both), and the ratio of
    the best rounds."""
    return float(np.median(np.divide(a, b))), min(a) / min(b)


def part_net1_cpu(table, quick):
    print("b. net1 epoch on CPU", flush=True)
    from kfkd_kit.utils.malloc import reuse_freed_memory
    from kfkd_kit.net.nets import MLP
    n = 600 if quick else KAGGLE_COMPLETE
    epochs, rounds = (4, 2) if quick else (5, 9)
    images, points = faces(n)
    train_rows, valid_rows = split(n)
    X, y = as_tensors(images, points, "cpu")
    kfkd, plain, same, eager = [], [], [], []
    for _ in range(rounds):
        _, times, _ = kfkd_fit("net1", images, points, epochs, "cpu")
        kfkd.append(epoch_seconds(times))
        torch.manual_seed(0)
        with reuse_freed_memory():
            same.append(epoch_seconds(plain_loop(MLP(), X, y, train_rows, valid_rows, epochs,
                                                 index_select=True)["times"]))
        _, times, _ = kfkd_fit("net1", images, points, epochs, "cpu", fast_path="eager")
        eager.append(epoch_seconds(times))
        torch.manual_seed(0)
        plain.append(epoch_seconds(plain_loop(MLP(), X, y, train_rows, valid_rows, epochs)["times"]))
    rows = f"{len(train_rows)} + {len(valid_rows)} rows"
    for label, kfkd_times, base, target in [
            (f"net1 epoch on CPU ({rows}), s, vs a plain PyTorch loop", kfkd, plain, "≤ 1.05×"),
            (("the same vs the plain loop given kfkd's malloc setting and index_select gathers "
             "(skorch's own overhead)"), kfkd, same, "≤ 1.05×"),
            ("the same, kfkd with fast_path='eager' (the fast step, uncaptured)", eager, same, None)]:
        median, best = paired(kfkd_times, base)
        table.add("b", f"{label}; ratio: median of rounds (best rounds {best:.2f})",
                  float(np.median(kfkd_times)), float(np.median(base)), median, target,
                  None if target is None else median <= 1.05)
    table.note(f"b. Seconds: median epoch after the first of {epochs}, median of {rounds} rounds, each "
               "running all four back to back (per round, s: kfkd "
               f"{', '.join(f'{v:.3f}' for v in kfkd)}; plain {', '.join(f'{v:.3f}' for v in plain)}; "
               f"plain with kfkd's settings {', '.join(f'{v:.3f}' for v in same)}; kfkd eager "
               f"{', '.join(f'{v:.3f}' for v in eager)}). All: batch 128, Nesterov SGD, masked MSE, "
               "a validation pass, the same float32 tensors. The plain loop splits train/valid rows "
               "once before timing and gathers batches with X[rows]; kfkd gathers every batch "
               "(validation too) from the full X with index_select (3x faster on CPU than X[rows]) "
               "and its fit keeps freed memory for reuse (malloc.reuse_freed_memory); the second "
               "row gives the plain loop both.")


# -- c. CNN epoch on CPU ---------------------------------------------------------------------
def part_cnn_cpu(table, quick):
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
    table.add("c", f"CNN (net2) epoch on CPU, fp32 ({len(train_rows)} + {len(valid_rows)} rows), s",
              k, d, k / d, "≤ 0.5×", k / d <= 0.5)
    table.add("c", "the same, kfkd with fast_path=False (no malloc setting), s", m, d, m / d)
    table.note(f"c. Median epoch after the first of {epochs}, best of {rounds} rounds (rounds: kfkd "
               f"{', '.join(f'{v:.2f}' for v in kfkd)}; fast_path=False "
               f"{', '.join(f'{v:.2f}' for v in no_malloc)}; defaults "
               f"{', '.join(f'{v:.2f}' for v in default)} s). Defaults: conv-ReLU-pool blocks in "
               "NCHW, DataLoader(TensorDataset, batch_size=128, shuffle=True), torch.optim.SGD. "
               "kfkd: channels_last, pool before ReLU, resident batches, and (fast path on) freed "
               "memory kept for reuse during the fit (glibc). torch.compile was tried and not "
               "kept: ~40 s to compile here, then slower epochs than eager channels_last.")


# -- d. CUDA ---------------------------------------------------------------------------------
def part_cuda(table, quick, eager_epochs=None, compile_epochs=0, device="cuda"):
    print("d. CUDA", flush=True)
    if device == "cuda" and not torch.cuda.is_available():
        table.note("d. skipped: no CUDA device here (run benchmarks/gpu_check.sh on a GPU machine).")
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
        table.add("d", f"{name} {epochs} epochs ({len(train_rows)} rows), s, kfkd graph vs eager loop{scaled}",
                  wall, eager_wall, wall / eager_wall, target, wall <= float(limit))
        table.add("d", f"{name} ms per step (graph / eager loop)", 1e3 * wall / steps, 1e3 * eager_wall / steps,
                  wall / eager_wall)
        table.add("d", f"{name} achieved TFLOP/s (graph / eager loop)", flops / wall / 1e12,
                  flops / eager_wall / 1e12, None)
        table.add("d", f"{name} final valid RMSE px (graph / eager loop)", rmse,
                  eager_rmse if not scaled else None, None, "same within noise")
        table.note(f"d. {name}: {training / 1e6:.0f} MFLOP per training row (forward {forward / 1e6:.0f}); "
                   "wall times include capture (graph) and exclude a 2-epoch warm-up fit.")

        variants = [("graph bf16", {"precision": "bf16"})]
        if config.module is CNN:
            variants += [("graph fp32 channels_last", {"module__channels_last": True}),
                         ("graph bf16 channels_last", {"precision": "bf16", "module__channels_last": True})]
        for label, params in variants:
            pipe, _, vwall = kfkd_fit(name, images, points, epochs, device, **graphs, **params)
            vrmse = math.sqrt(pipe.named_steps["net"].history[-1, "valid_loss"]) * SCALE
            del pipe
            table.add("d", f"{name} kfkd {label}: s, and RMSE px {vrmse:.2f}",
                      vwall, eager_wall, vwall / eager_wall, target, vwall <= float(limit))
        # skorch's plain path with the data resident (fast_path=False), fewer epochs, scaled
        s_epochs = max(2, epochs // 10)
        _, times, _ = kfkd_fit(name, images, points, s_epochs, device, fast_path=False)
        skorch_wall = (times[-1] - times[0]) * epochs / s_epochs
        table.add("d", f"{name} kfkd fast_path=False (skorch, resident data), s (from {s_epochs} epochs, scaled)",
                  skorch_wall, eager_wall, skorch_wall / eager_wall)
        if compile_epochs and name == "net5":
            torch.manual_seed(0)
            module = torch.compile(config.module(**config.module_params).to(device))
            try:
                out = plain_loop(module, X, y, train_rows, valid_rows, compile_epochs, lr=lr,
                                 momentum=momentum, flip=config.flip)
            except Exception as exc:  # noqa: BLE001 - a comparison only
                table.note(f"d. torch.compile failed: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            first = out["times"][1] - out["times"][0]
            steady = epoch_seconds(out["times"])
            total = first + steady * (epochs - 1)
            table.add("d", f"{name} eager loop + torch.compile: first epoch {first:.1f} s (compiling), "
                      f"then {1e3 * steady:.1f} ms/epoch; {epochs} epochs, s (scaled)",
                      total, eager_wall, total / eager_wall)


# -- f. net8 on CUDA -------------------------------------------------------------------------
def part_net8_cuda(table, quick, device="cuda"):
    print("f. net8 on CUDA", flush=True)
    if device == "cuda" and not torch.cuda.is_available():
        table.note("f. skipped: no CUDA device here (run benchmarks/gpu_check.sh on a GPU machine).")
        return
    n, epochs = (NET5_ROWS, 10 if quick else 30) if device == "cuda" else (300, 2)
    images, points = faces(n, missing=0.7)
    kfkd_fit("net8", images[:300], points[:300], 2, device)  # warm-up: context, cuDNN autotuning
    walls = {}
    for precision in ("fp32", "bf16"):
        pipe, times, wall = kfkd_fit("net8", images, points, epochs, device, precision=precision)
        rmse = math.sqrt(pipe.named_steps["net"].history[-1, "valid_loss"]) * SCALE
        walls[precision] = epoch_seconds(times)
        table.add("f", f"net8 {precision} on {device}: s per epoch ({n} rows, {epochs} epochs, "
                  f"valid RMSE {rmse:.2f} px)", walls[precision], None, None)
    table.add("f", f"net8 bf16 vs fp32 epoch on {device}, s", walls["bf16"], walls["fp32"],
              walls["bf16"] / walls["fp32"])
    table.note("f. net8 runs skorch's plain path on CUDA (its augmentation is outside the captured "
               "step); per-epoch seconds are the median after the first epoch.")


# -- g. checkpoints -------------------------------------------------------------------------
def part_checkpoints(table, quick):
    """What make train's per-epoch checkpoints (runs.py) cost a net1 epoch."""
    import tempfile

    from kfkd_kit.utils import runs
    print("g. checkpoint cost (net1)", flush=True)
    n, epochs, rounds = KAGGLE_COMPLETE, (10 if quick else 40), (1 if quick else 3)
    images, points = faces(n)
    seconds = {"plain": [], "checkpoints": []}
    for _ in range(rounds):
        for label in seconds:
            with tempfile.TemporaryDirectory() as run_dir:
                extra = {}
                if label == "checkpoints":
                    first, last = runs.checkpoint_callbacks(run_dir)
                    callbacks = list(configs.build("net1").named_steps["net"].callbacks)
                    extra["callbacks"] = first + callbacks + last
                _, times, _ = kfkd_fit("net1", images, points, epochs, "cpu", **extra)
                seconds[label].append(epoch_seconds(times))
    plain, kept = min(seconds["plain"]), min(seconds["checkpoints"])
    table.add("g", "net1 epoch with make train's checkpoints (last and best state kept every "
              "epoch, written within a 3% budget) vs without, s", kept, plain, kept / plain, "<= 1.05x", kept / plain <= 1.05)
    table.note(f"g. {n} complete rows, {epochs} epochs, median epoch after the first, best of "
               f"{rounds} rounds; checkpoints (7.4 MB a save: weights and momentum) written to "
               "a temporary folder on this disk by a background thread while training goes on, "
               "at most as often as keeps writing within 3% of the time (runs.SlotCheckpoint).")


# -- main ------------------------------------------------------------------------------------
# -- e. bf16 on CPU --------------------------------------------------------------------------
def part_bf16_cpu(table, quick):
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
        table.add("e", f"{name} training step on CPU, 128 images, bf16 autocast vs fp32, ms",
                  1000 * b16, 1000 * f32, b16 / f32, "≤ 0.55× (with AMX)" if amx else None,
                  (b16 / f32 <= 0.55) if amx else None)
    table.note(f"e. This CPU's native bf16: {support or 'none'} (precision.cpu_bf16_support). "
               f"A step is an epoch's seconds (median after the first of {epochs}, best of "
               f"{rounds} rounds) over its {batches} training batches of {len(train_rows)} rows, "
               "its validation pass included. net8 includes its augmentation, one-cycle and weight "
               "average; the 0.55x target is for CPUs with AMX.")


# -- h. net8 in fp32 on an AVX2-only CPU (imitated) -------------------------------------------
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
                                   module__layers=layers, flip_axis=48.5)
            steps[key].append(1000 * epoch_seconds(times) / batches)
    return steps


def part_net8_avx2(table, quick):
    import os
    import shutil
    print("h. net8 fp32 step, AVX2-capped child process vs today's layers", flush=True)
    command = [sys.executable, "-m", "benchmarks.bench", "--net8-fp32-child"]
    if quick:
        command.append("--quick")
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        command = ["taskset", "-c", "0,1"] + command
    env = dict(os.environ, **AVX2_CAP)
    child = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if child.returncode != 0:
        table.note(f"h. the capped child failed: {child.stderr.strip().splitlines()[-1:]}")
        return
    capped = json.loads(child.stdout.strip().splitlines()[-1])
    uncapped = net8_fp32_steps(quick, rounds=1)
    old, new = min(capped["v1"]), min(capped["now"])
    table.add("h", "net8 fp32 training step, 128 images, AVX2 cap on 2 cores: today's layers "
              "vs the first net8's (BNCNN.LAYERS_V1), ms", new, old, new / old, "≤ 0.5×",
              new / old <= 0.5)
    free = min(uncapped["v1"])
    table.add("h", "the first net8's fp32 step with the AVX2 cap vs without it (what the cap "
              "changes), ms", old, free, old / free)
    table.note(f"h. Capped child: ATen capability {capped['capability']}, {capped['threads']} "
               f"torch threads, {capped['rows']} rows (10% validation), {capped['batches']} "
               "training batches an epoch; a step is the median epoch after the first over "
               "those batches, best of the rounds (ms per round: first net8 "
               f"{', '.join(f'{v:.0f}' for v in capped['v1'])}; today "
               f"{', '.join(f'{v:.0f}' for v in capped['now'])}). Uncapped: ATen capability "
               f"{uncapped['capability']}.")


def part_predict(table, quick):
    """h: predict's three stages on this CPU: detection, alignment, the net (torch vs ORT)."""
    import tempfile

    from kfkd_kit import configs
    from kfkd_kit.photo import framing
    from kfkd_kit.commands.export import check_batch, export_onnx
    from kfkd_kit.photo.onnxmodel import OnnxKeypoints
    from kfkd_kit.photo.faces import make_detector
    from kfkd_kit.utils.modelfile import load_model, save_model
    from kfkd_kit.photo.photos import read_photo
    from kfkd_kit.commands.predict import SavedModel
    print("i. predict: detection, alignment, net8 through torch and onnxruntime", flush=True)
    n, rounds = (128, 2) if quick else (512, 3)
    images, points = faces(256)
    model = configs.build("net8", epochs=1, device="cpu", verbose=0).fit(images, points)
    framing.attach_layout(model, points)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "net8.joblib"
        save_model(model, path, {"net": "net8"})
        onnx_path = export_onnx(path, say=lambda *a: None)
        backends = {"torch": SavedModel(load_model(path)), "onnxruntime": OnnxKeypoints(onnx_path)}
        crops = check_batch(n)
        best = {}
        for _ in range(rounds):
            for name, backend in backends.items():
                start = time.perf_counter()
                backend(crops)
                took = time.perf_counter() - start
                best[name] = min(best.get(name, took), took)
    torch_fps, ort_fps = n / best["torch"], n / best["onnxruntime"]
    precision = getattr(configs.inner_net(model), "precision_", "fp32")
    table.add("i", f"net8 keypoints for {n} face crops, faces/s, onnxruntime (fp32) vs torch "
              f"({precision})", ort_fps, torch_fps, ort_fps / torch_fps)
    photo = read_photo(ROOT / "tests" / "data" / "astronaut.jpg")
    for detector in ("mtcnn", "haar"):
        find = make_detector(detector, 40)
        find(photo)                                               # load, warm up
        seconds = []
        for _ in range(rounds + 2):
            start = time.perf_counter()
            found = find(photo)
            seconds.append(time.perf_counter() - start)
        table.add("i", f"face detection ({detector}), 512x512 photo, ms per photo",
                  1000 * min(seconds))
    face = make_detector("haar", 40)(photo)[0]
    layout = framing.mean_layout(points)
    first = make_detector("haar", 40).first_crop(face, layout)
    seconds = []
    for _ in range(rounds + 2):
        start = time.perf_counter()
        for _ in range(50):
            patch = framing.FacePatch(photo.grey, first)
            patch.crop(first)
        seconds.append((time.perf_counter() - start) / 50)
    table.add("i", "alignment: a face's patch and one 96x96 crop, ms per face", 1000 * min(seconds))
    table.note(f"i. Faces per second of the net alone, on {n} crops (best of {rounds}); a face "
               "costs one net pass per crop (--passes). Detection is per photo, on the 512x512 "
               f"astronaut ({len(found)} face); the first detection loads the detector and is "
               "not counted.")


# -- j. net8 side by side: make train MODELS=2 on a small CPU ---------------------------------
def part_side_by_side(table, quick):
    """Epochs a second of net8: two nets at once in SeedEnsemble's worker processes (their
    share of the threads each) against one net on all the threads."""
    import statistics

    from sklearn.base import clone

    from kfkd_kit.meta.ensemble import SeedEnsemble
    from kfkd_kit.net.nested import nets
    print("j. net8: two nets side by side (make train MODELS=2) vs one", flush=True)
    n = 640 if quick else 1536
    epochs, rounds = (3, 1) if quick else (4, 2)
    images, points = faces(n, missing=0.7)

    def median_epoch(net):   # the epoch table's durations, the first (warm-up) left out
        return statistics.median([row["dur"] for row in net.history][1:])

    template = configs.build("net8", epochs=epochs, device="cpu", verbose=0, precision="auto",
                             flip_axis=48.5)
    one, two = [], []
    for _ in range(rounds):
        single = clone(template).fit(images, points)
        one.append(median_epoch(single.named_steps["net"]))
        ensemble = SeedEnsemble(template, seeds=2, n_jobs=2).fit(images, points)
        plan = ensemble.plan_
        two.append(max(median_epoch(net) for net in nets(ensemble).values()))
    single_rate, pair_rate = 1 / min(one), 2 / min(two)
    table.add("j", f"net8 epochs a second: 2 nets side by side ({plan['threads_per_job']} "
              f"thread{'s' if plan['threads_per_job'] > 1 else ''} each) vs 1 net on "
              f"{torch.get_num_threads()} threads", pair_rate, single_rate, pair_rate / single_rate)
    table.note(f"j. {n} synthetic rows (10% validation), {epochs} epochs, precision auto; an "
               "epoch's seconds are the median of the epoch table's after the first (for the "
               "pair, the slower net's), best of "
               f"{rounds} rounds (one net: {', '.join(f'{v:.2f}' for v in one)} s; side by "
               f"side: {', '.join(f'{v:.2f}' for v in two)} s). A ratio above 1 means "
               "MODELS=2 trains more epochs in all in the same minutes.")


PARTS = {"a": part_loading, "b": part_net1_cpu, "c": part_cnn_cpu, "d": part_cuda,
         "e": part_bf16_cpu, "f": part_net8_cuda, "g": part_checkpoints, "h": part_net8_avx2,
         "i": part_predict, "j": part_side_by_side}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rows, epochs and rounds")
    parser.add_argument("--parts", default="abcdefghij", help="which parts, e.g. 'bc' (default: all)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"),
                        help="Markdown file for the table ('-' for none); a run of some parts "
                             "only replaces its own section of it (bench-parts-PARTS)")
    parser.add_argument("--eager-epochs", type=int, default=None,
                        help="d: run the eager loop for this many epochs and scale (default: all)")
    parser.add_argument("--compile-epochs", type=int, default=0,
                        help="d: also time the eager net5 loop under torch.compile for this many "
                             "epochs (0: not)")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                        help="before each part wait up to SECONDS for the CPUs to be idle "
                             "(on a shared machine)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch's intra-op threads (default: torch's choice, all cores)")
    parser.add_argument("--cuda-part-device", default="cuda", help=argparse.SUPPRESS)
    parser.add_argument("--net8-fp32-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.net8_fp32_child:   # part h's capped child: one JSON line
        print(json.dumps(net8_fp32_steps(args.quick)))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {''.join(sorted(unknown))}; choose from {''.join(PARTS)}")
    info = machine()
    print(" | ".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    command = "python -m benchmarks.bench " + " ".join(argv if argv is not None else sys.argv[1:])
    start = time.perf_counter()
    # a run of some parts only goes into its own section of --out, so that the full run's
    # table (and other machines' sections) stay
    parts = "".join(sorted(set(args.parts)))
    partial = parts != "".join(sorted(PARTS))

    def markdown(table, done=False):
        took = time.perf_counter() - start
        status = f"{took:.0f} s in all" if done else f"INCOMPLETE: cut short after {took:.0f} s"
        return "\n".join([
            f"## Parts {parts}, {info.get('cpu', 'this CPU')}" if partial
            else "# kfkd benchmark results", "",
            (f"`{command.strip()}` ({'quick, ' if args.quick else ''}{status}), written by "
            "benchmarks/bench.py; ratios are kfkd / baseline, measured side by side in one run."), "",
            "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()), "",
            table.markdown(), "",
            *[f"- {note}" for note in table.notes], ""])

    def save(table, done=False):
        if args.out == "-":
            return
        out = Path(args.out)
        if partial:
            write_section(out, f"bench-parts-{parts}", markdown(table, done))
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(out, "w") as f:
            f.write(markdown(table, done))

    table = Table(save)
    for part in sorted(set(args.parts)):
        if part in "bceghij" or args.wait_quiet:
            busy = wait_until_quiet(args.wait_quiet) if args.wait_quiet else cpu_busy()
            table.note(f"{part}. CPUs {100 * busy:.0f}% busy (other processes) just before this part.")
        if part == "d":
            part_cuda(table, args.quick, args.eager_epochs, args.compile_epochs, args.cuda_part_device)
        elif part == "f":
            part_net8_cuda(table, args.quick, args.cuda_part_device)
        else:
            PARTS[part](table, args.quick)
    print()
    print(markdown(table, done=True))
    save(table, done=True)
    if args.out != "-":
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
