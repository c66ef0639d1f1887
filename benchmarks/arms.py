"""What the held-out arm benchmarks (clean, pseudo, fill) share: a model's scores on the
held-out rows, and one line comparing two arms over the same seeds."""
from __future__ import annotations

import statistics

from kfkd_kit.meta.tta import flip_tta
from kfkd_kit.net.metrics import masked_rmse_px


def heldout_scores(model, held, truth, prefix) -> dict:
    """RMSE plain, with flip TTA and with flips over a 3x3 grid of 2-px shifts, keyed by prefix."""
    views = flip_tta(model, shift=2).predict_views(held)
    return {f"{prefix}_rmse_px": masked_rmse_px(truth, model.predict(held)),
            f"{prefix}_rmse_tta_px": masked_rmse_px(truth, views[0]),
            f"{prefix}_rmse_tta_shift2_px": masked_rmse_px(truth, views.mean(axis=0))}


def gain_line(before_name, before, after_name, after) -> str:
    """"before 1.6, after 1.5, gain 0.1 +- 0.02 (per seed ...)": means over seeds, and the
    gain (before - after: positive is better) with its sd and each seed's."""
    gain = [a - b for a, b in zip(before, after)]
    sd = statistics.stdev(gain) if len(gain) > 1 else 0.0
    return (f"{before_name} {statistics.mean(before):.3f}, {after_name} "
            f"{statistics.mean(after):.3f}, gain {statistics.mean(gain):.3f} +- {sd:.3f} "
            f"(per seed {', '.join(f'{g:+.3f}' for g in gain)})")
