"""The results table the project produces itself: every configuration, one held-out split.

``run_zoo`` trains each named configuration on the same training rows, scores it on the
same held-out rows (RMSE px over the labelled values, as Kaggle scores), optionally also
with flip test-time augmentation, and writes a Markdown table (``docs/RESULTS.md``) that
records epochs, time and device, and the command that made it.
"""
from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import configs, data
from ._atomic import write_section
from .estimator import default_device
from .metrics import masked_rmse_px
from .train import cpu_model, histories, library_versions, resolve_data_dir
from .tta import FlipTTA

DEFAULT_NETS = ("net1", "net2", "net3", "net4", "net5", "net6", "net7", "net8", "specialists")


def holdout_split(n_rows, fraction=0.2, seed=0):
    """(train rows, held-out rows), a seeded shuffle."""
    order = np.random.default_rng(seed).permutation(n_rows)
    n_held = int(round(n_rows * fraction))
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def _epochs_run(model):
    runs = [len(h) for h in histories(model).values()]
    return str(runs[0]) if len(runs) == 1 else f"{min(runs)}-{max(runs)} ({len(runs)} nets)"


def parse_epoch_caps(text):
    """"25" or "25,net1=400" -> {None: 25, "net1": 400}: a cap for every net, and exceptions."""
    caps = {}
    for item in (text or "").replace(" ", ",").split(","):
        if not item:
            continue
        name, _, value = item.rpartition("=")
        try:
            caps[name or None] = int(value)
        except ValueError:
            raise ValueError(f"--max-epochs: {item!r} is not N or NET=N") from None
        if name:
            configs.get_config(name)
    return caps


def run_zoo(data_dir="data", nets=DEFAULT_NETS, max_epochs=None, holdout=0.2, seed=0,
            device=None, tta=True, out="docs/RESULTS.md", precision="auto",
            say=print) -> list[dict]:
    """Train and score each configuration; write the Markdown table; return its rows.

    ``max_epochs``: None (the tutorial's epochs), an int cap for every net, or a dict from
    ``parse_epoch_caps`` ({None: cap, "net1": 400}); the table says what was capped. The
    specialists are pre-trained from this run's net6 when net6 ran before them, as in the
    tutorial.
    """
    caps = max_epochs if isinstance(max_epochs, dict) else {None: max_epochs}
    device = device or default_device()
    folder = resolve_data_dir(data_dir, say)
    training = data.load_training(folder)
    X, y = training.X, training.y
    train_rows, held_rows = holdout_split(len(X), holdout, seed)
    complete = np.isfinite(y).all(axis=1)
    results, trained = [], {}
    for i, name in enumerate(nets, 1):
        config = configs.get_config(name)
        rows = train_rows[complete[train_rows]] if config.complete_only else train_rows
        cap = caps.get(name, caps.get(None))
        epochs = config.max_epochs if cap is None else min(cap, config.max_epochs)
        base = trained.get(config.specialist_net) if config.specialist_net else None
        model = configs.build(name, max_epochs=epochs, device=device, seed=seed, verbose=0,
                              base=base, precision=precision)
        say(f"[{i}/{len(nets)}] {name}: {config.description}; {len(rows)} rows, "
            f"{epochs} epochs on {device}" + (f", pre-trained from {config.specialist_net}"
                                              if base is not None else ""))
        start = time.perf_counter()
        model.fit(X[rows], y[rows])
        seconds = time.perf_counter() - start
        trained[name] = model
        row = {"net": name, "description": config.description, "train_rows": len(rows),
               "epochs": _epochs_run(model), "tutorial_epochs": config.max_epochs,
               "seconds": seconds, "device": device,
               "rmse_px": masked_rmse_px(y[held_rows], model.predict(X[held_rows]))}
        if tta:
            row["rmse_tta_px"] = masked_rmse_px(
                y[held_rows], FlipTTA(model, prefit=True).predict(X[held_rows]))
        say(f"    held-out RMSE {row['rmse_px']:.3f} px"
            + (f", with flip TTA {row['rmse_tta_px']:.3f} px" if tta else "")
            + f" ({seconds:.0f} s)")
        results.append(row)
        if out:  # rewrite after every net, so a long run leaves a useful table behind
            write_table(results, out, training, len(held_rows), caps, seed)
    return results


def _machine() -> str:
    import os

    import torch
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu_model()}, {os.cpu_count()} cores{gpu}"


def _caps_text(caps) -> str:
    if all(v is None for v in caps.values()):
        return "the tutorial's."
    text = f"**capped at {caps[None]}**" if caps.get(None) is not None else "the tutorial's"
    exceptions = [f"{name}: {n}" for name, n in caps.items() if name is not None]
    if exceptions:
        text += f" ({', '.join(exceptions)})"
    return (text + "; the tutorial's are in the last column, so capped rows are not the "
            "tutorial's results. Schedules run from start to stop within the epochs run.")


def write_table(results, out, training, n_held, caps, seed) -> Path:
    versions = library_versions()
    lines = [
        "## Every configuration on one held-out split (`make zoo`)",
        "",
        f"Produced by `{' '.join(['kfkd'] + sys.argv[1:]) if sys.argv[0].endswith(('kfkd', '__main__.py')) else 'kfkd zoo'}`"
        f" on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        f"- Data: `{training.source}` (fingerprint `{training.fingerprint}`), {len(training.X)} rows; "
        f"{n_held} rows held out (seed {seed}), scored as Kaggle scores: RMSE in pixels over "
        "the labelled values only (most held-out rows label only 4 keypoints).",
        f"- Machine: {_machine()}; torch {versions['torch']}, skorch {versions['skorch']}.",
        "- Epochs: " + _caps_text(caps),
        "",
        "| net | what | train rows | epochs run | held-out RMSE (px) | + flip TTA (px) | time (s) | device | tutorial epochs |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for r in results:
        tta = f"{r['rmse_tta_px']:.3f}" if "rmse_tta_px" in r else ""
        lines.append(f"| {r['net']} | {r['description']} | {r['train_rows']} | {r['epochs']} | "
                     f"{r['rmse_px']:.3f} | {tta} | {r['seconds']:.0f} | {r['device']} | "
                     f"{r['tutorial_epochs']} |")
    # only the zoo's own section: the file also holds net8's results (benchmarks/net8_runs.py)
    return write_section(out, "zoo", "\n".join(lines))
