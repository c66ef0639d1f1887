"""j. net8 side by side (make train MODELS=2 on a small CPU): epochs a second of two nets at
once in SeedEnsemble's worker processes (their share of the threads each) against one net
on all the threads.
"""
from __future__ import annotations

import torch

from kfkd_kit import configs

from .common import faces
from kfkd_kit.keypoints import image_axis   # a fixed axis: no measuring in a timed fit


def run(table, opts):
    """Epochs a second of net8: two nets at once in SeedEnsemble's worker processes (their
    share of the threads each) against one net on all the threads."""
    quick = opts.quick
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
                             flip_axis=image_axis())
    one, two = [], []
    for _ in range(rounds):
        single = clone(template).fit(images, points)
        one.append(median_epoch(single.named_steps["net"]))
        ensemble = SeedEnsemble(template, seeds=2, n_jobs=2).fit(images, points)
        plan = ensemble.plan_
        two.append(max(median_epoch(net) for net in nets(ensemble).values()))
    single_rate, pair_rate = 1 / min(one), 2 / min(two)
    table.add(f"net8 epochs a second: 2 nets side by side ({plan['threads_per_job']} "
              f"thread{'s' if plan['threads_per_job'] > 1 else ''} each) vs 1 net on "
              f"{torch.get_num_threads()} threads", pair_rate, single_rate, pair_rate / single_rate)
    table.note(f"{n} synthetic rows (10% validation), {epochs} epochs, precision auto; an "
               "epoch's seconds are the median of the epoch table's after the first (for the "
               "pair, the slower net's), best of "
               f"{rounds} rounds (one net: {', '.join(f'{v:.2f}' for v in one)} s; side by "
               f"side: {', '.join(f'{v:.2f}' for v in two)} s). A ratio above 1 means "
               "MODELS=2 trains more epochs in all in the same minutes.")
