"""Finding faces in a photo, with detectors whose weights ship inside their wheels (nothing is
downloaded at run time):

- ``mtcnn``: facenet-pytorch's MTCNN (three small CNNs, weights in the wheel; needs torch).
  It gives each face a box, a probability and five landmarks (eye centres, nose, mouth
  corners). The photo is searched upright and turned by +-25 degrees (MTCNN_TURNS), so
  faces tilted well beyond what one upright search finds are found too; a face found in
  several turns is kept once, as its best-scored box (merge_turns). Without torch, the same
  MTCNN runs on nets exported to ONNX (mtcnnonnx.py, a subclass of MTCNNDetector here).
- ``haar``: OpenCV's Haar cascade ``haarcascade_frontalface_default.xml``
  (opencv-python-headless < 5: the 5.0 wheels ship no cascade files). Upright faces only (up
  to about 15 degrees of tilt), boxes only, no score (1); no torch.

A detector returns ``Face`` records in the photo's coordinates (Kaggle's, as framing.py):
``box`` (x, y, w, h) whose top-left corner is (x, y), and for MTCNN ``landmarks``.
Photos are searched at most ``DETECT_SIDE`` pixels on their longer side (larger ones are
searched on an area-averaged copy and the boxes scaled back), so a 12-megapixel photo costs
what a 1600-pixel one does.
"""
from __future__ import annotations

import importlib.util
import sys
import types
import warnings
from dataclasses import dataclass

import numpy as np

DETECTORS = ("mtcnn", "haar")
DETECT_SIDE = 1600
# MTCNN: the final stage's probability a face must reach. On 836 faces15 faces pasted into
# larger canvases (benchmarks/photo_set.py, seeds 0-3): 0.9 found 834 with no extra
# detection, and 0.8 the same 834. On textured photos (benchmarks/clutter_set.py) higher
# thresholds lost faces faster than false boxes (from 0.95 on).
MTCNN_THRESHOLD = 0.9
# MTCNN searches the photo upright and turned by these angles (degrees): tilted faces that the
# upright search misses are found turned (on the same set, 4 of the 5 faces missed upright
# were tilted by 14 to 18 degrees). A face found twice is kept once.
MTCNN_TURNS = (0.0, -25.0, 25.0)
# How the faces found in the turns are merged (merge_turns): "nms", the best score first,
# or "centre", upright first. nms keeps each face's best score, so a --min-score loses fewer
# faces: on 200 held-out faces15 faces on textured photos (benchmarks/clutter_set.py), at 0.99
# 194 against 183 (seed 0) and 191 against 180 (seed 1); the same faces and false boxes at
# 0.9, RMSE within 0.03 px either way (docs/RESULTS.md).
MTCNN_MERGE = "nms"
MERGE_IOU = 0.3
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
HAAR_NEIGHBOURS = 3
# Where Kaggle's 96x96 frame lies relative to a Haar box (x, y, w): its left edge at
# x + u w, top at y + v w, side k w: the medians over 150 faces15 faces (the held-out rows of
# a net8) pasted upright into canvases, `python -m benchmarks.photo_set --calibrate --detector
# haar` (interquartile ranges 0.08, 0.07, 0.13: a Haar box frames a face loosely).
HAAR_FRAME = (-0.047, -0.039, 1.116)


@dataclass
class Face:
    """One detection: ``box`` (x, y, w, h) in photo coordinates, ``score`` (MTCNN's
    probability; 1 for Haar), ``landmarks`` (5, 2) for MTCNN (the subject's right eye, left
    eye, nose, right and left mouth corners) or None."""
    box: np.ndarray
    score: float = 1.0
    landmarks: np.ndarray | None = None
    detector: str = "haar"

    @property
    def width(self) -> float:
        return float(self.box[2])


def make_detector(name: str, min_size: float):
    """A callable ``detect(photo) -> list[Face]`` for detector ``name``; faces down to
    ``min_size`` / 2 pixels wide are reported, so that those below ``min_size`` can be
    counted as skipped."""
    if name == "mtcnn":
        return MTCNNDetector(min_size)
    if name == "haar":
        return HaarDetector(min_size)
    raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")


def _detection_scale(shape) -> float:
    return min(1.0, DETECT_SIDE / max(shape[:2]))


def _shrunk(image, factor):
    import cv2
    if factor >= 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _to_photo(points, factor):
    """Detector coordinates of a shrunk copy -> photo coordinates (edges kept in place)."""
    return (np.asarray(points, dtype=np.float64) - 0.5) / factor + 0.5


class HaarDetector:
    name = "haar"

    def __init__(self, min_size):
        import cv2
        path = cv2.data.haarcascades + HAAR_CASCADE
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise ValueError(f"OpenCV cannot load its Haar cascade {path} "
                             "(opencv-python-headless < 5 ships it)")
        self.min_size = min_size

    def __call__(self, photo) -> list[Face]:
        factor = _detection_scale(photo.grey.shape)
        grey = _shrunk(np.clip(np.round(photo.grey), 0, 255).astype(np.uint8), factor)
        smallest = max(20, int(self.min_size / 2 * factor))
        boxes = self.cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=HAAR_NEIGHBOURS,
                                              minSize=(smallest, smallest))
        faces = []
        for x, y, w, h in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
            # pixel columns x .. x + w - 1 (0-based): edges at x + 0.5 and x + w + 0.5
            corner = _to_photo([x + 0.5, y + 0.5], factor)
            faces.append(Face(np.array([*corner, w / factor, h / factor]), detector=self.name))
        return suppress_nested(faces)

    def first_crop(self, face, layout):
        """Photo -> crop transform that frames the face as HAAR_FRAME says Kaggle's frame lies
        around such a box (scale and shift; a Haar box is upright)."""
        from ..keypoints import IMAGE_SIDE
        x, y, w, _ = face.box
        u, v, k = HAAR_FRAME
        scale = IMAGE_SIDE / (k * w)
        return np.array([[scale, 0.0, 0.5 - scale * (x + u * w)],
                         [0.0, scale, 0.5 - scale * (y + v * w)]])


def _turn(shape, degrees):
    """The rotation about an image's centre, as a 2x3 transform in Kaggle's coordinates."""
    height, width = shape[:2]
    angle = np.deg2rad(degrees)
    A = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([(width + 1) / 2, (height + 1) / 2])
    return np.concatenate([A, (centre - A @ centre)[:, None]], axis=1)


def _warp(rgb, T):
    import cv2

    from .framing import pixel_matrix
    height, width = rgb.shape[:2]
    return cv2.warpAffine(rgb, pixel_matrix(T), (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))


def _apply(T, points):
    points = np.asarray(points, dtype=np.float64)
    return points @ T[:, :2].T + T[:, 2]


def merge_turns(faces, how="nms"):
    """One face per face found in several turns. ``nms``: best score first, a face dropped
    when its centre lies in a kept box, a kept centre in its box, or it overlaps a kept box
    by IoU over MERGE_IOU; ``centre``: in search order (upright first), a face dropped when
    its centre lies in a kept box."""
    if how == "nms":
        faces = sorted(faces, key=lambda f: -f.score)
    kept = []
    for face in faces:
        centre = face.box[:2] + face.box[2:] / 2
        if any(_inside(centre, other.box) for other in kept):
            continue
        if how == "nms" and any(_inside(other.box[:2] + other.box[2:] / 2, face.box)
                                or _iou(face.box, other.box) > MERGE_IOU for other in kept):
            continue
        kept.append(face)
    return kept


def _iou(a, b) -> float:
    inter = _intersection(a, b)
    return inter / max(a[2] * a[3] + b[2] * b[3] - inter, 1e-12)


def _inside(point, box) -> bool:
    return box[0] <= point[0] <= box[0] + box[2] and box[1] <= point[1] <= box[1] + box[3]


def suppress_nested(faces, overlap=0.3):
    """Drop a box that overlaps a larger one by more than ``overlap`` of its own area
    (Haar reports the same face at two nearby scales)."""
    kept = []
    for face in sorted(faces, key=lambda f: -f.box[2] * f.box[3]):
        x, y, w, h = face.box
        if all(_intersection(face.box, other.box) <= overlap * w * h for other in kept):
            kept.append(face)
    return kept


def _intersection(a, b) -> float:
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(width, 0.0) * max(height, 0.0)


# MTCNN's landmarks, in its order, as Kaggle keypoints (the photo's left eye is the subject's
# right eye).
MTCNN_KEYPOINTS = ("right_eye_center", "left_eye_center", "nose_tip", "mouth_right_corner",
                   "mouth_left_corner")


class MTCNNDetector:
    name = "mtcnn"

    def __init__(self, min_size):
        self.mtcnn = load_mtcnn(min_face_size=max(12.0, min_size / 2))
        self.min_size = min_size

    def __call__(self, photo) -> list[Face]:
        factor = _detection_scale(photo.rgb.shape)
        rgb = _shrunk(photo.rgb, factor)
        self.mtcnn.min_face_size = max(12.0, self.min_size / 2 * factor)
        faces = []
        for angle in MTCNN_TURNS:
            turn = _turn(rgb.shape, angle)
            image = rgb if angle == 0 else _warp(rgb, turn)
            back = np.linalg.inv(np.vstack([turn, [0, 0, 1]]))[:2]
            for face in self._detect(image):
                # from the turned copy back to the shrunk photo, then to the photo
                centre = _apply(back, face.box[:2] + face.box[2:] / 2)
                size = face.box[2:]
                corner = _to_photo(centre - size / 2, factor)
                faces.append(Face(np.array([*corner, *(size / factor)]), score=face.score,
                                  landmarks=_to_photo(_apply(back, face.landmarks), factor),
                                  detector=self.name))
        return merge_turns(faces, MTCNN_MERGE)

    def _run(self, rgb):
        """MTCNN on an RGB image: (boxes x1, y1, x2, y2, probabilities, landmarks) or Nones."""
        import torch
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.mtcnn.detect(rgb, landmarks=True)

    def _detect(self, rgb) -> list[Face]:
        boxes, probs, landmarks = self._run(rgb)
        if boxes is None:
            return []
        # MTCNN's coordinates count pixel centres from 0: + 1 for Kaggle's
        return [Face(np.array([*(box[:2] + 1.0), *(box[2:] - box[:2])]), score=float(prob),
                     landmarks=np.asarray(marks, dtype=np.float64) + 1.0, detector=self.name)
                for box, prob, marks in zip(boxes, probs, landmarks)
                if prob is not None and prob >= MTCNN_THRESHOLD]

    def first_crop(self, face, layout):
        """Photo -> crop transform that puts the five landmarks on the mean layout's eye
        centres, nose tip and mouth corners (rotation, scale, shift)."""
        from .framing import fit_similarity, points
        from ..keypoints import KEYPOINTS
        target = points(layout)[[KEYPOINTS.index(k) for k in MTCNN_KEYPOINTS]]
        return fit_similarity(face.landmarks, target)


def load_mtcnn(min_face_size=20.0):
    """facenet-pytorch's MTCNN on the CPU, weights from its wheel. facenet-pytorch 2.6.0 imports
    torchvision for one function (batched_nms) and pins an old torch, so it is installed
    with --no-deps (requirements-nodeps.txt) and, where torchvision is absent, that
    function is given to it by a stand-in module present only while it is imported."""
    try:
        import torch  # noqa: F401  (a clear message below if torch itself is missing)
    except ImportError:
        raise ValueError("--detector mtcnn needs torch; use --detector haar") from None
    if "facenet_pytorch" not in sys.modules and importlib.util.find_spec("torchvision") is None:
        stand_in = _torchvision_stand_in()
        sys.modules.update(stand_in)
        try:
            _import_facenet()
        finally:
            for name in stand_in:
                sys.modules.pop(name, None)
    else:
        _import_facenet()
    from facenet_pytorch import MTCNN
    return MTCNN(keep_all=True, device="cpu", min_face_size=min_face_size)


def _import_facenet():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import facenet_pytorch  # noqa: F401
    except ImportError as exc:
        raise ValueError(f"--detector mtcnn needs facenet-pytorch ({exc}); install it with "
                         "pip install --no-deps -r requirements-nodeps.txt, or use "
                         "--detector haar") from None


def _torchvision_stand_in() -> dict:
    modules = {name: types.ModuleType(name) for name in (
        "torchvision", "torchvision.ops", "torchvision.ops.boxes", "torchvision.transforms",
        "torchvision.transforms.functional")}
    modules["torchvision.ops.boxes"].batched_nms = batched_nms
    modules["torchvision.ops"].boxes = modules["torchvision.ops.boxes"]
    modules["torchvision.transforms"].functional = modules["torchvision.transforms.functional"]
    modules["torchvision"].ops = modules["torchvision.ops"]
    modules["torchvision"].transforms = modules["torchvision.transforms"]
    return modules


def batched_nms(boxes, scores, idxs, iou_threshold):
    """torchvision.ops.batched_nms: greedy non-maximum suppression of (x1, y1, x2, y2) boxes
    by descending score, separately for each value of ``idxs``; indices of the boxes kept."""
    import torch
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    b = boxes.detach().double().cpu().numpy()
    b = b + (idxs.detach().cpu().double().numpy() * (b.max() + 1.0))[:, None]
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    order = np.argsort(-scores.detach().cpu().double().numpy(), kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        width = np.clip(np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]), 0, None)
        height = np.clip(np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]), 0, None)
        inter = width * height
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-12)
        order = rest[iou <= iou_threshold]
    return torch.as_tensor(keep, dtype=torch.int64, device=boxes.device)
