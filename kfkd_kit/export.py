"""ONNX: `kfkd export` writes a fitted net as an ONNX graph; ``OnnxKeypoints`` runs one
through onnxruntime for `kfkd predict --model M.onnx`, without importing torch.

The graph is the net as it predicts: input ``crops``, float32 (n, 96, 96) grey levels 0..255
(a uint8 crop cast to float); the pixel scaling (/ 255) inside; output ``keypoints``, float32
(n, 30) in pixels, Kaggle's columns and coordinates. For net8 its weights are the weight
average that the fitted net carries. It is computed in fp32: a net that predicts in bf16 on
a CPU with AMX gives answers that differ by a few hundredths of a pixel.

Before anything is written the export runs onnxruntime and the torch net (in fp32) on one
batch and refuses, in one line, when any keypoint differs by more than TOLERANCE px. Stored
in the graph's metadata and in the JSON: the model's mean keypoint layout (for framing
photos) and its mirror axis (for flip TTA), read from the model.

The sha256 of the ONNX file goes into the JSON beside it: ``model_file`` when that JSON is
the ONNX file's own, or ``onnx_file`` when the JSON already describes the model it was
exported from (``models/net8.joblib`` and ``models/net8.onnx`` share ``models/net8.json``;
retraining rewrites that JSON, so a stale export is refused until it is exported again).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .keypoints import FEATURE_NAMES, IMAGE_SIDE, N_TARGETS, flip_pairs

TOLERANCE = 1e-3     # px
OPSET = 17
CHECK_BATCH = 64
ONNX_FORMAT = "onnx"


# --------------------------------------------------------------------------- export

def export_onnx(model_path, out=None, trust=False, say=print) -> Path:
    """Export the model at ``model_path`` to ``out`` (default: the same path with .onnx),
    checked against torch first. Returns the ONNX path."""
    import torch

    from . import framing, modelfile
    from ._atomic import atomic_write, write_json
    model_path = Path(model_path)
    out = Path(out) if out else model_path.with_suffix(".onnx")
    if out.resolve() == model_path.resolve():
        raise ValueError(f"{out}: the ONNX file would replace the model it comes from; "
                         "give --out another name")
    model = modelfile.load_model(model_path, trust=trust)
    net = _single_net(model, model_path)
    layout = framing.layout_of(model)
    mirror = mirror_sum_of(model)
    wrapper = _Graph(net.module_).eval()
    batch = check_batch()
    payload = _onnx_bytes(wrapper, batch)
    expected = _fp32_predictions(model, net, batch)
    got = OnnxKeypoints.from_bytes(payload).raw(batch)
    worst = float(np.max(np.abs(got - expected)))
    if not np.isfinite(worst) or worst > TOLERANCE:
        raise ValueError(f"{model_path}: the ONNX graph's keypoints differ from torch's by up to "
                         f"{worst:.2g} px on the check batch (tolerance {TOLERANCE:g} px); "
                         "nothing written")
    metadata = {"mean_keypoints": None if layout is None else [float(v) for v in layout],
                "mirror_sum": mirror, "source": str(model_path), "opset": str(OPSET),
                "input": "crops: float32 (n, 96, 96) grey levels 0..255",
                "output": "keypoints: float32 (n, 30) pixels, " + ",".join(FEATURE_NAMES[:2]) + ", ..."}
    payload = _with_metadata(payload, metadata)
    got = OnnxKeypoints.from_bytes(payload).raw(batch)          # the bytes written, rechecked
    worst = float(np.max(np.abs(got - expected)))
    if worst > TOLERANCE:
        raise ValueError(f"{model_path}: the ONNX graph's keypoints differ from torch's by up to "
                         f"{worst:.2g} px; nothing written")
    as_predicted = np.asarray(model.predict(batch.reshape(len(batch), -1)), dtype=np.float64)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, "wb") as f:
        f.write(payload)
    import hashlib
    record = {"file": out.name, "format": ONNX_FORMAT, "bytes": len(payload),
              "sha256": hashlib.sha256(payload).hexdigest()}
    check = {"batch": len(batch), "max_abs_diff_px": worst, "tolerance_px": TOLERANCE,
             "precision_of_torch_predict": getattr(net, "precision_", "fp32"),
             "max_abs_diff_vs_torch_predict_px": float(np.max(np.abs(got - as_predicted)))}
    onnx_record = {"source_model": str(model_path), "source_sha256": modelfile.sha256_of(model_path),
                   "opset": OPSET, "check": check, "mean_keypoints": metadata["mean_keypoints"],
                   "mirror_sum": mirror}
    json_file = modelfile.json_path(out)
    existing = _read_json(json_file)
    described = (existing.get("model_file") or {}).get("file") if existing else None
    if existing and described not in (None, out.name):
        write_json(json_file, dict(existing, onnx_file=record, onnx=onnx_record))
    else:
        source = _read_json(modelfile.json_path(model_path)) or {}
        base = {k: v for k, v in source.items() if k not in ("model_file", "onnx_file", "onnx")}
        write_json(json_file, dict(base, model_file=record, onnx=onnx_record))
    say(f"checked: onnxruntime and torch (fp32) agree to {worst:.1e} px on {len(batch)} crops"
        + (f"; torch's own {check['precision_of_torch_predict']} predictions differ by up to "
           f"{check['max_abs_diff_vs_torch_predict_px']:.3f} px"
           if check["precision_of_torch_predict"] != "fp32" else ""))
    return out


def _single_net(model, path):
    from sklearn.pipeline import Pipeline
    from .estimator import KeypointNet
    from .pipeline import PixelScaler
    if (isinstance(model, Pipeline) and len(model.steps) == 2
            and isinstance(model.steps[0][1], PixelScaler)
            and isinstance(model.steps[1][1], KeypointNet)
            and model.steps[0][1].n_pixels in (None, IMAGE_SIDE * IMAGE_SIDE)):
        return model.steps[1][1]
    raise ValueError(f"{path}: holds a {type(model).__name__}; export handles one net's "
                     "pipeline (pixels -> net), as kfkd train saves net1 ... net8")


def _torch_graph():
    import torch

    from .keypoints import CENTER, SCALE

    class Graph(torch.nn.Module):
        """crops (n, 96, 96) grey levels -> keypoints (n, 30) pixels."""

        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, crops):
            x = crops.reshape(crops.shape[0], IMAGE_SIDE * IMAGE_SIDE) / 255.0
            return self.module(x) * SCALE + CENTER

    return Graph


def _Graph(module):
    import copy
    module = copy.deepcopy(module).float().eval()
    import torch
    module = module.to(memory_format=torch.contiguous_format)
    if hasattr(module, "channels_last"):
        module.channels_last = False     # NHWC is a CPU speed-up for training; same numbers
    return _torch_graph()(module)


def _onnx_bytes(wrapper, batch) -> bytes:
    import io
    import warnings

    import torch
    buffer = io.BytesIO()
    example = torch.as_tensor(batch[:2])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper, (example,), buffer, input_names=["crops"],
                          output_names=["keypoints"], opset_version=OPSET,
                          dynamic_axes={"crops": {0: "n"}, "keypoints": {0: "n"}},
                          dynamo=False)
    return buffer.getvalue()


def _with_metadata(payload, metadata) -> bytes:
    import onnx
    graph = onnx.load_from_string(payload)
    del graph.metadata_props[:]
    for key, value in metadata.items():
        entry = graph.metadata_props.add()
        entry.key = key
        entry.value = json.dumps(value) if not isinstance(value, str) else value
    graph.producer_name = "kfkd_kit"
    graph.doc_string = "96x96 grey face crop (0..255) -> 15 keypoints (x, y) in pixels"
    return graph.SerializeToString()


def _fp32_predictions(model, net, batch):
    """The fitted model's predictions for ``batch``, its net computing in fp32."""
    saved = getattr(net, "precision_", None)
    try:
        if saved is not None:
            net.precision_ = "fp32"
        return np.asarray(model.predict(batch.reshape(len(batch), -1)), dtype=np.float64)
    finally:
        if saved is not None:
            net.precision_ = saved


def check_batch(n=CHECK_BATCH, seed=0) -> np.ndarray:
    """Crops to compare the graph with torch on: half smooth random images, half the
    built-in synthetic faces (float32 (n, 96, 96), 0..255)."""
    from .synthetic import make_faces
    rng = np.random.default_rng(seed)
    faces = make_faces(n - n // 2, seed=seed)[0].reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    noise = rng.uniform(0, 255, (n // 2, 12, 12)).astype(np.float32)
    import cv2
    smooth = np.stack([cv2.resize(k, (IMAGE_SIDE, IMAGE_SIDE), interpolation=cv2.INTER_CUBIC)
                       for k in noise])
    return np.clip(np.concatenate([faces.astype(np.float32), smooth]), 0, 255).astype(np.float32)


def mirror_sum_of(model) -> float:
    """The mirror axis that tta.flip_tta uses for ``model`` (x -> S - x), read off flip_tta
    itself rather than assumed: for a crop and its mirror, flip TTA's answer is
    (p + mirror(q)) / 2, so mirror(q) = 2 TTA - p, and S = mirror(q)_x + q_x(swapped)."""
    from .keypoints import mirror_images
    from .tta import flip_tta
    crops = check_batch(8, seed=1).reshape(8, -1)
    p = np.asarray(model.predict(crops), dtype=np.float64)
    q = np.asarray(model.predict(mirror_images(crops)), dtype=np.float64)
    both = np.asarray(flip_tta(model).predict(crops), dtype=np.float64)
    mirrored = 2 * both - p
    swapped = q.copy()
    for a, b in flip_pairs():
        swapped[:, [a, b]] = q[:, [b, a]]
    sums = (mirrored + swapped)[:, 0::2]
    if np.ptp(sums) > 1e-2:
        raise ValueError("cannot read the mirror axis off flip_tta for this model")
    return float(np.round(sums.mean(), 4))


def _read_json(path):
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


# --------------------------------------------------------------------------- onnxruntime

class OnnxKeypoints:
    """An exported graph run by onnxruntime: ``obj(crops)`` -> (n, 30) keypoints in pixels
    for float crops (n, 96, 96); flip TTA with ``tta`` (the mirror axis stored at export).
    ``layout``: the mean keypoint layout stored at export (None if the model had none)."""

    BATCH = 256

    def __init__(self, path=None, trust=False, tta=False, payload=None):
        import onnxruntime as ort
        if payload is None:
            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such model; run `kfkd export` first")
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
        self.mirror_sum = float(json.loads(meta["mirror_sum"])) if "mirror_sum" in meta else None
        if tta and self.mirror_sum is None:
            raise ValueError(f"{path}: exported without a mirror axis; export it again for --tta")
        self.tta = tta
        self.input = self.session.get_inputs()[0].name
        shape = self.session.get_outputs()[0].shape
        if len(shape) != 2 or shape[1] != N_TARGETS:
            raise ValueError(f"{path}: gives outputs of shape {shape}, expected (n, {N_TARGETS})")

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
        direct = self.raw(crops)
        if not self.tta:
            return direct
        mirrored = self.raw(np.asarray(crops, dtype=np.float32)[..., ::-1])
        mirrored[:, 0::2] = self.mirror_sum - mirrored[:, 0::2]
        for a, b in flip_pairs():
            mirrored[:, [a, b]] = mirrored[:, [b, a]]
        return (direct + mirrored) / 2


def check_onnx_sha256(path) -> None:
    """Raise ValueError unless the JSON beside ``path`` records its sha256 (under
    ``model_file`` or ``onnx_file``) and the bytes match."""
    from .modelfile import TRUST_HINT, json_path, sha256_of
    path = Path(path)
    record_path = json_path(path)
    saved = _read_json(record_path)
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
