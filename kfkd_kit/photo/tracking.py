"""Face tracks across video frames: which face of this frame is which face of the last ones.

Each track remembers its last box and how fast that box moved (per frame: its corner and its
size), and is expected where that motion takes it. A frame's faces are matched to the
tracks' expected boxes by overlap (intersection over union), one to one, the matching of
largest total overlap (the Hungarian algorithm, scipy's ``linear_sum_assignment``); a pair
that overlaps less than ``min_iou`` is no match. A face matched to no track starts a new one
with the next id; a track unmatched for more than ``max_missed`` frames in a row ends (its
id is never given again).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Tracker", "iou", "MIN_IOU", "MAX_MISSED"]

# A face must overlap its track's expected box by this much: a face that moves between two
# frames by a third of its width still overlaps its last box by 0.5.
MIN_IOU = 0.3
# A track survives this many frames without its face (a missed detection, a hand passing).
MAX_MISSED = 5


def iou(a, b) -> np.ndarray:
    """Intersection over union of boxes (x, y, w, h): ``a`` (n, 4) against ``b`` (m, 4) ->
    (n, m)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)[None]
    lo = np.maximum(a[..., :2], b[..., :2])
    hi = np.minimum(a[..., :2] + a[..., 2:], b[..., :2] + b[..., 2:])
    width, height = (hi - lo)[..., 0], (hi - lo)[..., 1]
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return inter / np.maximum(union, 1e-12)


@dataclass
class _Track:
    id: int
    box: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    missed: int = 0

    def expected(self) -> np.ndarray:
        """Where the box should be in the next frame, at its last speed."""
        return self.box + self.velocity * (self.missed + 1)

    def move(self, box):
        gap = self.missed + 1
        # half the new step, half the old speed: one jumpy detection does not fling it away
        self.velocity = 0.5 * (box - self.box) / gap + 0.5 * self.velocity
        self.box, self.missed = box, 0


class Tracker:
    """``tracker.update(boxes)`` -> the track id of each box (x, y, w, h) of the next frame,
    in their order; ``started`` counts the tracks so far (ids 0, 1, ...)."""

    def __init__(self, min_iou=MIN_IOU, max_missed=MAX_MISSED):
        self.min_iou, self.max_missed = min_iou, max_missed
        self.tracks: list[_Track] = []
        self.started = 0

    def update(self, boxes) -> list[int]:
        from scipy.optimize import linear_sum_assignment
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        ids = [-1] * len(boxes)
        matched = set()
        if self.tracks and len(boxes):
            overlap = iou(boxes, [t.expected() for t in self.tracks])
            for i, j in zip(*linear_sum_assignment(overlap, maximize=True)):
                if overlap[i, j] >= self.min_iou:
                    self.tracks[j].move(boxes[i])
                    ids[i] = self.tracks[j].id
                    matched.add(j)
        for j, track in enumerate(self.tracks):
            if j not in matched:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for i, box in enumerate(boxes):
            if ids[i] < 0:
                self.tracks.append(_Track(self.started, box))
                ids[i] = self.started
                self.started += 1
        return ids
