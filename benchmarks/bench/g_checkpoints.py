"""g. What make train's per-epoch checkpoints (utils/runs.py) cost a net1 epoch on CPU.
"""
from __future__ import annotations

from kfkd_kit import configs

from .common import KAGGLE_COMPLETE, epoch_seconds, faces, kfkd_fit


def run(table, opts):
    """What make train's per-epoch checkpoints (runs.py) cost a net1 epoch."""
    quick = opts.quick
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
    table.add("net1 epoch with make train's checkpoints (last and best state kept every "
              "epoch, written within a 3% budget) vs without, s", kept, plain, kept / plain, "<= 1.05x", kept / plain <= 1.05)
    table.note(f"{n} complete rows, {epochs} epochs, median epoch after the first, best of "
               f"{rounds} rounds; checkpoints (7.4 MB a save: weights and momentum) written to "
               "a temporary folder on this disk by a background thread while training goes on, "
               "at most as often as keeps writing within 3% of the time (runs.SlotCheckpoint).")
