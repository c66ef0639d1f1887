"""What the parts share: synthetic faces, fits with a clock, a plain PyTorch loop, the table."""
from __future__ import annotations

import datetime
import time
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback
from torch import nn

from kfkd_kit import configs
from kfkd_kit.data import synthetic
from kfkd_kit.keypoints import COMMON_KEYPOINTS, N_TARGETS, columns_of, to_unit
from kfkd_kit.net.batches import flip_half
from kfkd_kit.net.losses import MaskedMSELoss
from kfkd_kit.utils import provenance

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = ROOT / "build" / "bench"
KAGGLE_ROWS = 7049          # rows of Kaggle's training.csv
KAGGLE_COMPLETE = 2140      # of which complete (net1 trains on these)
NET5_ROWS = 2770            # faces15's training rows after the 20% hold-out

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
    """The results, part by part; ``on_change(table, part)`` runs after every row and note
    (so a run cut short keeps what it measured). A part adds through ``table.part(letter)``."""

    COLUMNS = ("part", "measure", "kfkd", "baseline", "kfkd / baseline", "target", "met")

    def __init__(self, on_change=None):
        self.rows = []      # (part, what, kfkd, baseline, ratio, target, met)
        self.notes = []     # (part, text)
        self.on_change = on_change or (lambda table, part: None)

    def part(self, letter):
        return PartTable(self, letter)

    def add(self, part, what, kfkd, baseline=None, ratio=None, target=None, met=None):
        self.rows.append((part, what, kfkd, baseline, ratio, target, met))
        print(f"  {part} | {what} | {_fmt(kfkd)} | {_fmt(baseline)} | {_fmt(ratio)} | "
              f"{target or ''} | {'' if met is None else ('yes' if met else 'NO')}", flush=True)
        self.on_change(self, part)

    def note(self, part, text):
        self.notes.append((part, text))
        self.on_change(self, part)

    def has_rows(self, part):
        return any(row[0] == part for row in self.rows)

    def markdown(self, parts=None):
        """The rows (of ``parts`` only, if given) as a Markdown table, then their notes."""
        import pandas as pd
        keep = (lambda part: True) if parts is None else (lambda part: part in parts)
        cells = [(part, what, _fmt(kfkd), _fmt(baseline), _fmt(ratio), target or "",
                  "" if met is None else ("yes" if met else "**no**"))
                 for part, what, kfkd, baseline, ratio, target, met in self.rows if keep(part)]
        # cells are text already (_fmt): tabulate must not parse and reformat them as numbers
        text = pd.DataFrame(cells, columns=self.COLUMNS, dtype=object).to_markdown(
            index=False, disable_numparse=True)
        notes = [f"- {part}. {note}" for part, note in self.notes if keep(part)]
        return "\n".join([text, "", *notes])


class PartTable:
    """One part's view of the table: its rows and notes carry its letter."""

    def __init__(self, table, letter):
        self.table, self.letter = table, letter

    def add(self, what, kfkd, baseline=None, ratio=None, target=None, met=None):
        self.table.add(self.letter, what, kfkd, baseline, ratio, target, met)

    def note(self, text):
        self.table.note(self.letter, text)


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
