"""MTCNN without torch: the P-, R- and O-net that `kfkd export` writes beside a keypoint graph
(mtcnngraph.py) run by onnxruntime, around a NumPy/OpenCV re-implementation of
facenet-pytorch's pipeline (its defaults: stage thresholds 0.6, 0.7, 0.7, pyramid factor
0.709), so that it finds the same boxes, probabilities and landmarks:

1. an image pyramid from ``min_face_size`` up (each level an area-average resize, computed
   as torch's ``interpolate(mode="area")`` does); P-net scores every 12x12 window (stride 2);
   windows above 0.6 become boxes, suppressed per level (IoU 0.5), then across levels (0.7),
   moved by P-net's regression and made square;
2. each box cut out (clipped to the photo), resized to 24x24 for R-net; those above 0.7 kept,
   suppressed (IoU 0.7), moved by R-net's regression, made square;
3. the same at 48x48 for O-net, which adds the five landmarks; those above 0.7 kept, moved,
   and suppressed by overlap over the smaller box (0.7).

Coordinates are MTCNN's (pixel centres counted from 0), as facenet-pytorch returns them.
``OnnxMTCNNDetector`` is faces.MTCNNDetector (turns, threshold, landmarks for the first crop)
running these nets.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .faces import MTCNNDetector
from .mtcnngraph import NETS

__all__ = ["OnnxMTCNN", "OnnxMTCNNDetector", "area_resize", "nms"]

THRESHOLDS = (0.6, 0.7, 0.7)
FACTOR = 0.709


def _bins(n_in, n_out):
    i = np.arange(n_out)
    return i * n_in // n_out, ((i + 1) * n_in + n_out - 1) // n_out


def _cumulative(a, axis):
    """Cumulative sums along ``axis`` with a zero first, in float64."""
    total = np.cumsum(a, axis=axis, dtype=np.float64)
    zero = np.zeros_like(np.take(total, [0], axis=axis))
    return np.concatenate([zero, total], axis=axis)


def _pool(total, axis, n_out):
    start, end = _bins(total.shape[axis] - 1, n_out)
    sums = np.take(total, end, axis=axis) - np.take(total, start, axis=axis)
    shape = [1] * total.ndim
    shape[axis] = n_out
    return sums / (end - start).reshape(shape)


def area_resize(image, height, width, rows=None):
    """(c, h, w) float -> (c, height, width) float32: each output pixel the mean of its input
    bin [floor(i h / height), ceil((i + 1) h / height)), as torch's adaptive average pooling
    (``interpolate(mode="area")``). ``rows``: ``_cumulative(image, 1)``, when several sizes
    are cut from one image."""
    rows = _cumulative(image, 1) if rows is None else rows
    return _pool(_cumulative(_pool(rows, 1, height), 2), 2, width).astype(np.float32)


def nms(boxes, scores, threshold, by_min=False):
    """Greedy suppression by descending score; indices kept. IoU on continuous areas
    (torchvision's), or with ``by_min`` overlap over the smaller box on +1 areas (MTCNN's last
    stage)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    b = np.asarray(boxes, dtype=np.float64)
    plus = 1.0 if by_min else 0.0
    area = (b[:, 2] - b[:, 0] + plus) * (b[:, 3] - b[:, 1] + plus)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        low, high = np.maximum(b[i, :2], b[rest, :2]), np.minimum(b[i, 2:4], b[rest, 2:4])
        inter = np.prod(np.clip(high - low + plus, 0, None), axis=1)
        overlap = inter / (np.minimum(area[i], area[rest]) if by_min
                           else np.maximum(area[i] + area[rest] - inter, 1e-12))
        order = rest[overlap <= threshold]
    return np.array(keep, dtype=np.int64)


def _square(boxes):
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    boxes[:, 0] += w * 0.5 - side * 0.5
    boxes[:, 1] += h * 0.5 - side * 0.5
    boxes[:, 2] = boxes[:, 0] + side
    boxes[:, 3] = boxes[:, 1] + side
    return boxes


def _regress(boxes, reg):
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, :4] += reg * np.stack([w, h, w, h], axis=1)
    return boxes


def _crops(image, boxes, side):
    """The boxes cut out of ``image`` (c, h, w), clipped to it, area-resized to side x side;
    and which boxes gave a crop."""
    _, height, width = image.shape
    b = np.trunc(boxes[:, :4]).astype(np.int64)
    x, y = np.maximum(b[:, 0], 1), np.maximum(b[:, 1], 1)
    ex, ey = np.minimum(b[:, 2], width), np.minimum(b[:, 3], height)
    ok = (ey > y - 1) & (ex > x - 1)
    crops = [area_resize(image[:, y[k] - 1:ey[k], x[k] - 1:ex[k]], side, side)
             for k in np.flatnonzero(ok)]
    crops = np.stack(crops) if crops else np.zeros((0, 3, side, side), np.float32)
    return (crops - 127.5) * 0.0078125, ok


class OnnxMTCNN:
    """The three nets in onnxruntime sessions; ``detect(rgb)`` -> (boxes (n, 4) x1, y1, x2, y2,
    probabilities (n,), landmarks (n, 5, 2)), as facenet-pytorch's ``MTCNN.detect``."""

    def __init__(self, payloads, min_face_size=20.0):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1       # small nets: threads cost more than they give
        self.sessions = {net: ort.InferenceSession(payloads[net], options,
                                                   providers=["CPUExecutionProvider"])
                         for net in NETS}
        self.min_face_size = min_face_size

    @classmethod
    def from_record(cls, folder, record, trust=False, source="the model"):
        """The nets named in a keypoint graph's metadata ``record`` ({net: {file, sha256}}),
        read from ``folder``; each file's sha256 checked unless ``trust``."""
        payloads = {}
        for net in NETS:
            entry = record.get(net) or {}
            path = Path(folder) / str(entry.get("file", ""))
            if not entry.get("file") or not path.is_file():
                raise ValueError(f"{path}: MTCNN's {net}, named by {source}, is missing; export "
                                 "the model again (kfkd export)")
            payload = path.read_bytes()
            if not trust and hashlib.sha256(payload).hexdigest() != entry.get("sha256"):
                raise ValueError(f"{path}: sha256 does not match the one {source} records; "
                                 "export the model again, or pass --trust-model (TRUST=1)")
            payloads[net] = payload
        return cls(payloads)

    def _run(self, net, batch):
        session = self.sessions[net]
        name = session.get_inputs()[0].name
        if net == "pnet":
            return session.run(None, {name: batch})
        parts = [session.run(None, {name: batch[i:i + 512]}) for i in range(0, len(batch), 512)]
        return [np.concatenate(p) for p in zip(*parts)]

    def detect(self, rgb):
        image = np.ascontiguousarray(np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1))
        _, h, w = image.shape
        none = np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
        boxes = self._proposals(image)
        if not len(boxes):
            return none
        # stage 2: R-net
        crops, ok = _crops(image, boxes, 24)
        boxes = boxes[ok]
        reg, prob = self._run("rnet", crops)
        keep = prob[:, 1] > THRESHOLDS[1]
        boxes = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], axis=1)
        reg = reg[keep]
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7)
        boxes = _square(_regress(boxes[pick], reg[pick]))
        if not len(boxes):
            return none
        # stage 3: O-net
        crops, ok = _crops(image, boxes, 48)
        boxes = boxes[ok]
        reg, marks, prob = self._run("onet", crops)
        keep = prob[:, 1] > THRESHOLDS[2]
        boxes = np.concatenate([boxes[keep, :4], prob[keep, 1:2]], axis=1)
        reg, marks = reg[keep], marks[keep]
        bw = boxes[:, 2:3] - boxes[:, 0:1] + 1
        bh = boxes[:, 3:4] - boxes[:, 1:2] + 1
        points = np.stack([bw * marks[:, :5] + boxes[:, 0:1] - 1,
                           bh * marks[:, 5:] + boxes[:, 1:2] - 1], axis=2)
        boxes = _regress(boxes, reg)
        pick = nms(boxes[:, :4], boxes[:, 4], 0.7, by_min=True)
        boxes, points = boxes[pick], points[pick]
        return boxes[:, :4].astype(np.float64), boxes[:, 4].astype(np.float64), \
            points.astype(np.float64)

    def _proposals(self, image):
        """Stage 1: P-net over the pyramid -> square boxes (n, 5) with P-net's score."""
        _, h, w = image.shape
        m = 12.0 / self.min_face_size
        scales, side = [], min(h, w) * m
        scale = m
        while side >= 12:
            scales.append(scale)
            scale *= FACTOR
            side *= FACTOR
        found, summed = [], _cumulative(image, 1)
        for scale in scales:
            level = area_resize(image, int(h * scale + 1), int(w * scale + 1), summed)
            reg, prob = self._run("pnet", ((level - 127.5) * 0.0078125)[None])
            rows, cols = np.nonzero(prob[0, 1] >= THRESHOLDS[0])
            if not len(rows):
                continue
            cell = np.stack([cols, rows], axis=1).astype(np.float32)
            q1 = np.floor((2 * cell + 1) / np.float32(scale))
            q2 = np.floor((2 * cell + 12) / np.float32(scale))
            boxes = np.concatenate([q1, q2, prob[0, 1, rows, cols][:, None],
                                    reg[0][:, rows, cols].T], axis=1)
            found.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
        if not found:
            return np.zeros((0, 5), np.float32)
        boxes = np.concatenate(found)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        w_, h_ = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        moved = boxes[:, :4] + boxes[:, 5:9] * np.stack([w_, h_, w_, h_], axis=1)
        return _square(np.concatenate([moved, boxes[:, 4:5]], axis=1))


class OnnxMTCNNDetector(MTCNNDetector):
    """faces.MTCNNDetector with the exported nets: same turns, threshold and first crop."""

    def __init__(self, nets: OnnxMTCNN, min_size):
        self.mtcnn = nets
        self.min_size = min_size

    def _run(self, rgb):
        return self.mtcnn.detect(rgb)
