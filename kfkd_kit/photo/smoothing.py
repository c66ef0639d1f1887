"""Steadier keypoints on video (`kfkd predict clip.mp4 --smooth`): a One Euro filter per
face track and coordinate.

The One Euro filter (Casiez, Roussel and Vogel, "1 € Filter: A Simple Speed-based Low-pass
Filter for Noisy Input in Interactive Systems", CHI 2012) is a first-order low-pass filter
whose cutoff frequency rises with the signal's speed: a face that holds still is smoothed
hard (cutoff ``min_cutoff``), one that moves is followed closely (cutoff ``min_cutoff +
beta * speed``). Speed is measured in face widths per second here (the coordinate's speed
divided by the face's width), so the same settings suit a small face and a large one.

Causal (each frame's value uses only the frames before it) and off by default: the raw
keypoints are the net's honest answer for each frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..keypoints import FEATURE_NAMES

__all__ = ["OneEuro", "OneEuroFilter", "smooth_tracks"]

NOMINAL_FPS = 30.0


@dataclass(frozen=True)
class OneEuro:
    """The filter's settings: ``min_cutoff`` (Hz) the cutoff when still, ``beta`` how much
    it rises per face width per second of speed, ``d_cutoff`` (Hz) the cutoff of the speed
    estimate. The defaults held a still face's points to a fraction of their jitter and
    followed the test clips' moving faces within a pixel or two (tests/photo/test_video.py)."""
    min_cutoff: float = 1.0
    beta: float = 5.0
    d_cutoff: float = 1.0

    def __post_init__(self):
        if not (self.min_cutoff > 0 and self.d_cutoff > 0 and self.beta >= 0):
            raise ValueError(f"One Euro settings must be min_cutoff > 0, d_cutoff > 0, beta >= 0; "
                             f"got {self}")


def _alpha(cutoff, dt):
    """The smoothing factor of a first-order low-pass filter at ``cutoff`` Hz over ``dt`` s."""
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One Euro filters over a vector of coordinates, one per coordinate:
    ``filter(x, t, scale)`` -> the filtered ``x`` at time ``t`` (seconds, increasing);
    ``scale`` (pixels) divides the speed, so that ``beta`` is per face width."""

    def __init__(self, settings: OneEuro = OneEuro()):
        self.settings = settings
        self.x = self.dx = self.t = None

    def __call__(self, x, t, scale=1.0) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        s = self.settings
        if self.x is None:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), float(t)
            return self.x.copy()
        dt = float(t) - self.t
        if not dt > 0:                       # a repeated or unknown time: no new information
            return self.x.copy()
        a_d = _alpha(s.d_cutoff, dt)
        self.dx = a_d * (x - self.x) / dt + (1 - a_d) * self.dx
        cutoff = s.min_cutoff + s.beta * np.abs(self.dx) / max(float(scale), 1e-9)
        a = _alpha(cutoff, dt)
        self.x = a * x + (1 - a) * self.x
        self.t = float(t)
        return self.x.copy()


def smooth_tracks(rows, settings: OneEuro = OneEuro()):
    """Filter the keypoints of ``rows`` (dicts with ``image``, ``frame``, ``time``, ``face``,
    ``w`` and Kaggle's 30 columns), in place, track by track (a track: one ``face`` id in one
    ``image``) in frame order. Times come from ``time``; where it is NaN (a file that gives
    no frame rate), from ``frame`` at NOMINAL_FPS. Returns ``rows``."""
    tracks = {}
    for row in sorted(rows, key=lambda r: (r["image"], r["face"], r["frame"])):
        f = tracks.setdefault((row["image"], row["face"]), OneEuroFilter(settings))
        t = row["time"]
        if not np.isfinite(t):
            t = row["frame"] / NOMINAL_FPS
        values = np.array([row[k] for k in FEATURE_NAMES], dtype=np.float64)
        row.update(zip(FEATURE_NAMES, np.round(f(values, t, scale=row["w"]), 3)))
    return rows
