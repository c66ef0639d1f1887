"""Is there a face in a 96x96 crop? MTCNN (faces.load_mtcnn) on each crop, for the data
audit's "images where no face is found".

A training crop is the face itself, edge to edge, which a detector trained on photos
rarely sees: each crop is padded by half its side (edge pixels repeated) and upscaled x2,
so the face is a 192-px face in a 384-px picture. On faces15 it found a face scoring 0.9 or
more in 497 of the first 500 training crops (the 3 others are real faces: a cap's shadow, a
blurred face, a face at the edge) and in all of the first 200 test crops, and in none of 50
noise images (docs/RESULTS.md, "The data audit on faces15"). So it reports; it never cleans.
"""
from __future__ import annotations

import numpy as np

from ..keypoints import IMAGE_SIDE

__all__ = ["faceless", "face_scores", "MIN_SCORE"]

MIN_SCORE = 0.9       # an image whose best face scores less has no face found
PAD = IMAGE_SIDE // 2
UPSCALE = 2
CHUNK = 32


def _pictures(X):
    import cv2
    out = []
    for image in np.asarray(X, dtype=np.uint8).reshape(-1, IMAGE_SIDE, IMAGE_SIDE):
        padded = cv2.copyMakeBorder(image, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)
        big = cv2.resize(padded, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_LINEAR)
        out.append(np.repeat(big[:, :, None], 3, axis=2))
    return out


def face_scores(X, desc="finding faces") -> np.ndarray:
    """(n,) the best face score MTCNN gives each crop of ``X`` (n, 9216) uint8; 0 for none."""
    from ..utils import progress
    from .faces import load_mtcnn
    detector = load_mtcnn(min_face_size=IMAGE_SIDE)
    scores = np.zeros(len(X))
    with progress.bar(total=len(X), desc=desc, unit="image") as bar:
        for start in range(0, len(X), CHUNK):
            _, probs = detector.detect(_pictures(X[start:start + CHUNK]))
            for i, p in enumerate(probs):
                found = [] if p is None else [v for v in np.ravel(p) if v is not None]
                scores[start + i] = float(max(found)) if found else 0.0
            bar.update(min(CHUNK, len(X) - start))
    return scores


def faceless(X, skip=(), min_score=MIN_SCORE, desc="finding faces") -> list:
    """[{"row", "score"}] for the crops of ``X`` where no face scores ``min_score`` or more,
    leaving out the rows in ``skip`` (already reported, e.g. near-constant)."""
    skip = set(skip)
    rows = np.array([r for r in range(len(X)) if r not in skip], dtype=np.int64)
    scores = face_scores(np.asarray(X)[rows], desc) if len(rows) else np.zeros(0)
    return [{"row": int(r), "score": round(float(s), 4)}
            for r, s in zip(rows, scores) if s < min_score]
