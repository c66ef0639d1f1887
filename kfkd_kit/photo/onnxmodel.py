"""An exported ONNX graph run by onnxruntime, without torch: ``OnnxKeypoints`` serves
`kfkd predict --model M.onnx`; ``check_onnx_sha256`` checks the file against its JSON.

`kfkd export` writes such a graph (photo/onnxgraph.py, which says what the graph holds).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..keypoints import IMAGE_SIDE, LEGACY_PIXEL_ORIGIN, N_TARGETS, check_shift, flip_shift_views


class OnnxKeypoints:
    """An exported graph run by onnxruntime: ``obj(crops)`` -> (n, 30) keypoints in pixels
    for float crops (n, 96, 96); flip TTA with ``tta`` (the mirror axis stored at export),
    over a 3x3 grid of shifts ``tta_shift`` pixels apart as well (as ``tta.FlipTTA``).
    ``layout``: the mean keypoint layout stored at export (None if the model had none);
    ``pixel_origin``: the convention of the keypoints and the layout, stored at export
    (``LEGACY_PIXEL_ORIGIN`` for a graph exported before it was);
    ``detector(min_size)``: MTCNN run on the nets exported beside the graph, or None."""

    BATCH = 256

    def __init__(self, path=None, trust=False, tta=False, payload=None, tta_shift=0):
        import onnxruntime as ort
        if payload is None:
            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: no such model; export one there first: kfkd export --model MODEL "
                    f"--out {path} (make export MODEL=MODEL OUT={path})")
            if not trust:
                check_onnx_sha256(path)
            payload = path.read_bytes()
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(payload, options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            text = " ".join(str(exc).split())[:200]
            raise ValueError(f"{path}: not a readable ONNX model ({text})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        layout = json.loads(meta["mean_keypoints"]) if meta.get("mean_keypoints") else None
        self.layout = None if layout is None else np.asarray(layout, dtype=np.float64)
        self.pixel_origin = (float(json.loads(meta["pixel_origin"])) if "pixel_origin" in meta
                             else LEGACY_PIXEL_ORIGIN)
        self.mirror_sum = float(json.loads(meta["mirror_sum"])) if "mirror_sum" in meta else None
        # MTCNN's nets exported beside the graph (mtcnngraph.py): {net: {file, sha256}}
        self.mtcnn = json.loads(meta["mtcnn"]) if meta.get("mtcnn") else None
        self.path, self.trust = (None if path is None else Path(path)), trust
        if tta and self.mirror_sum is None:
            raise ValueError(f"{path}: exported without a mirror axis; export it again for --tta")
        self.tta = tta
        self.shift = check_shift(tta_shift)
        self.input = self.session.get_inputs()[0].name
        shape = self.session.get_outputs()[0].shape
        if len(shape) != 2 or shape[1] != N_TARGETS:
            raise ValueError(f"{path}: gives outputs of shape {shape}, expected (n, {N_TARGETS})")

    def detector(self, min_size):
        """An mtcnnonnx.OnnxMTCNNDetector on the MTCNN nets that `kfkd export` wrote beside
        this graph (their sha256 checked against the graph's record unless trusted), or None
        when the graph names none."""
        if not self.mtcnn or self.path is None:
            return None
        from .mtcnnonnx import OnnxMTCNN, OnnxMTCNNDetector
        nets = OnnxMTCNN.from_record(self.path.parent, self.mtcnn, trust=self.trust,
                                     source=str(self.path))
        return OnnxMTCNNDetector(nets, min_size)

    @classmethod
    def from_bytes(cls, payload):
        return cls(payload=payload)

    def raw(self, crops) -> np.ndarray:
        crops = np.ascontiguousarray(np.asarray(crops, dtype=np.float32).reshape(
            -1, IMAGE_SIDE, IMAGE_SIDE))
        parts = [self.session.run(None, {self.input: crops[i:i + self.BATCH]})[0]
                 for i in range(0, len(crops), self.BATCH)]
        return np.concatenate(parts).astype(np.float64) if parts else np.zeros((0, N_TARGETS))

    def __call__(self, crops) -> np.ndarray:
        if not self.tta:
            return self.raw(crops)
        crops = np.asarray(crops, dtype=np.float32).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
        return flip_shift_views(self.raw, crops, self.mirror_sum / 2, self.shift).mean(0)


def check_onnx_sha256(path) -> None:
    """Raise ValueError unless the JSON beside ``path`` records its sha256 (under
    ``model_file`` or ``onnx_file``) and the bytes match."""
    from ..utils.modelfile import TRUST_HINT, json_path, read_record, sha256_of
    path = Path(path)
    record_path = json_path(path)
    saved = read_record(record_path)
    if saved is None:
        raise ValueError(f"{path}: no readable {record_path.name} beside it records the model's "
                         f"sha256; export it again, or {TRUST_HINT}")
    records = [r for r in (saved.get("onnx_file"), saved.get("model_file"))
               if isinstance(r, dict) and r.get("file") == path.name and r.get("sha256")]
    if not records:
        raise ValueError(f"{path}: {record_path.name} records no sha256 for {path.name} (exported "
                         f"before the model was saved again?); export it again, or {TRUST_HINT}")
    actual = sha256_of(path)
    if actual != records[0]["sha256"]:
        raise ValueError(f"{path}: sha256 {actual[:12]}... does not match "
                         f"{records[0]['sha256'][:12]}... recorded in {record_path.name}; export "
                         f"it again, or {TRUST_HINT}")
