"""The ONNX graph of fitted nets (`kfkd export`): built from their torch modules, checked
against torch, written with its record. Its runtime twin is onnxmodel.py
(``OnnxKeypoints``, onnxruntime without torch, for `kfkd predict --model M.onnx`);
meta/onnxexport.py picks the nets out of a saved model and calls ``write_graph``.

The graph is the net as it predicts: input ``crops``, float32 (n, 96, 96) grey levels 0..255
(a uint8 crop cast to float); the pixel scaling (/ 255) inside; output ``keypoints``, float32
(n, 30) in pixels, Kaggle's columns and coordinates. For net8 its weights are the weight
average that the fitted net carries. A seed or fold ensemble becomes one graph that holds its
N nets and outputs the mean of their keypoints; a stack (`kfkd stack`), one graph that holds
every member's nets and maps their keypoints linearly (``combine``: each member's mean, then
the meta-model). It is computed in fp32:
a net that predicts in bf16 on a CPU with AMX gives answers that differ by a few hundredths
of a pixel.

Before anything is written the export runs onnxruntime and the torch net (in fp32) on one
batch and refuses, in one line, when any keypoint differs by more than TOLERANCE px. Stored
in the graph's metadata and in the JSON: the model's mean keypoint layout (for framing
photos), the pixel origin of its keypoints and layout (``pixel_origin``, keypoints.py; a graph
without it was exported from a model trained under ``LEGACY_PIXEL_ORIGIN``) and its mirror
axis (for flip TTA), read from the model.

The sha256 of the ONNX file goes into the JSON beside it: ``model_file`` when that JSON is
the ONNX file's own, or ``onnx_file`` when the JSON already describes the model it was
exported from (``models/net8.joblib`` and ``models/net8.onnx`` share ``models/net8.json``;
retraining rewrites that JSON, so a stale export is refused until it is exported again).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..keypoints import FEATURE_NAMES, IMAGE_SIDE, flip_pairs
from . import framing
from .onnxmodel import OnnxKeypoints

__all__ = ["write_graph", "graph_module", "onnx_bytes", "with_metadata", "check_batch",
           "fp32_predictions", "mirror_sum_of", "TOLERANCE", "OPSET", "CHECK_BATCH"]

TOLERANCE = 1e-3     # px
OPSET = 17
CHECK_BATCH = 64
ONNX_FORMAT = "onnx"


def write_graph(model, nets, model_path, out, mirror, say=print, extra=None,
                companions=None, pixel_origin=None, combine=None) -> Path:
    """Write the ONNX graph of ``nets`` (the fitted KeypointNets whose mean is ``model``'s
    keypoints, or with ``combine`` = (matrix (len(nets) * 30, 30), bias (30,)) their
    keypoints side by side times the matrix plus the bias) to ``out``, once onnxruntime and
    torch (fp32) agree within TOLERANCE px on the check batch, with ``mirror`` (the flip axis
    sum, ``mirror_sum_of``) and the model's mean layout in its metadata; then its sha256 into
    the JSON beside ``out``.
    ``model_path``: the saved model it comes from, named in messages and the record;
    ``extra``: more metadata (e.g. MTCNN's files, mtcnngraph.py), None values left out;
    ``companions``: {path: bytes} written (atomically) just before the graph, once it is
    checked. ``pixel_origin``: its keypoints' (default: the one stored beside its layout,
    ``framing.origin_of``). Returns ``out``."""
    from ..utils import modelfile
    from ..utils.atomic import atomic_write, write_json
    model_path, out = Path(model_path), Path(out)
    layout = framing.layout_of(model)
    origin = framing.origin_of(model) if pixel_origin is None else float(pixel_origin)
    wrapper = graph_module([net.module_ for net in nets], combine).eval()
    batch = check_batch()
    payload = onnx_bytes(wrapper, batch)
    expected = fp32_predictions(model, nets, batch)
    got = OnnxKeypoints.from_bytes(payload).raw(batch)
    worst = float(np.max(np.abs(got - expected)))
    if not np.isfinite(worst) or worst > TOLERANCE:
        raise ValueError(f"{model_path}: the ONNX graph's keypoints differ from torch's by up to "
                         f"{worst:.2g} px on the check batch (tolerance {TOLERANCE:g} px); "
                         "nothing written")
    metadata = {"mean_keypoints": None if layout is None else [float(v) for v in layout],
                "pixel_origin": origin,
                "mirror_sum": mirror, "source": str(model_path), "opset": str(OPSET),
                "input": "crops: float32 (n, 96, 96) grey levels 0..255",
                "output": "keypoints: float32 (n, 30) pixels, " + ",".join(FEATURE_NAMES[:2]) + ", ...",
                **{k: v for k, v in (extra or {}).items() if v is not None}}
    payload = with_metadata(payload, metadata)
    got = OnnxKeypoints.from_bytes(payload).raw(batch)          # the bytes written, rechecked
    worst = float(np.max(np.abs(got - expected)))
    if worst > TOLERANCE:
        raise ValueError(f"{model_path}: the ONNX graph's keypoints differ from torch's by up to "
                         f"{worst:.2g} px; nothing written")
    as_predicted = np.asarray(model.predict(batch.reshape(len(batch), -1)), dtype=np.float64)
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, data in (companions or {}).items():
        with atomic_write(path, "wb") as f:
            f.write(data)
    with atomic_write(out, "wb") as f:
        f.write(payload)
    import hashlib
    record = {"file": out.name, "format": ONNX_FORMAT, "bytes": len(payload),
              "sha256": hashlib.sha256(payload).hexdigest()}
    check = {"batch": len(batch), "max_abs_diff_px": worst, "tolerance_px": TOLERANCE,
             "precision_of_torch_predict": getattr(nets[0], "precision_", "fp32"),
             "max_abs_diff_vs_torch_predict_px": float(np.max(np.abs(got - as_predicted)))}
    onnx_record = {"source_model": str(model_path), "source_sha256": modelfile.sha256_of(model_path),
                   "opset": OPSET, "check": check, "mean_keypoints": metadata["mean_keypoints"],
                   "pixel_origin": origin, "mirror_sum": mirror,
                   **({"nets_averaged": len(nets)} if combine is None
                      else {"nets_stacked": len(nets)}),
                   **{k: v for k, v in (extra or {}).items() if v is not None}}
    json_file = modelfile.json_path(out)
    existing = modelfile.read_record(json_file)
    described = (existing.get("model_file") or {}).get("file") if existing else None
    if existing and described not in (None, out.name):
        write_json(json_file, dict(existing, onnx_file=record, onnx=onnx_record))
    else:
        source = modelfile.read_record(model_path) or {}
        base = {k: v for k, v in source.items() if k not in ("model_file", "onnx_file", "onnx")}
        write_json(json_file, dict(base, model_file=record, onnx=onnx_record))
    say(f"checked: onnxruntime and torch (fp32) agree to {worst:.1e} px on {len(batch)} crops"
        + (f"; torch's own {check['precision_of_torch_predict']} predictions differ by up to "
           f"{check['max_abs_diff_vs_torch_predict_px']:.3f} px"
           if check["precision_of_torch_predict"] != "fp32" else ""))
    return out


def _torch_graph():
    import torch

    from ..keypoints import CENTER, SCALE

    class Graph(torch.nn.Module):
        """crops (n, 96, 96) grey levels -> keypoints (n, 30) pixels: the mean of the
        nets' keypoints (one net: its own), or with ``combine`` their keypoints side by
        side times its matrix plus its bias."""

        def __init__(self, modules, combine=None):
            super().__init__()
            self.nets = torch.nn.ModuleList(modules)
            self.combine = combine is not None
            if self.combine:
                matrix, bias = (torch.as_tensor(v, dtype=torch.float32) for v in combine)
                self.register_buffer("matrix", matrix)
                self.register_buffer("bias", bias)

        def forward(self, crops):
            x = crops.reshape(crops.shape[0], IMAGE_SIDE * IMAGE_SIDE) / 255.0
            if self.combine:
                keypoints = torch.cat([net(x) * SCALE + CENTER for net in self.nets], dim=1)
                return keypoints @ self.matrix + self.bias
            total = sum(net(x) for net in self.nets)
            return total / len(self.nets) * SCALE + CENTER

    return Graph


def graph_module(modules, combine=None):
    """The torch module the graph is exported from: fp32, contiguous copies of ``modules``,
    averaged or combined (``write_graph``'s ``combine``)."""
    import copy

    import torch
    copies = []
    for module in modules:
        module = copy.deepcopy(module).float().eval()
        module = module.to(memory_format=torch.contiguous_format)
        if hasattr(module, "channels_last"):
            module.channels_last = False     # NHWC is a CPU speed-up for training; same numbers
        copies.append(module)
    return _torch_graph()(copies, combine)


def onnx_bytes(wrapper, batch) -> bytes:
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


def with_metadata(payload, metadata) -> bytes:
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


def fp32_predictions(model, nets, batch):
    """The fitted model's predictions for ``batch``, its nets computing in fp32."""
    saved = [getattr(net, "precision_", None) for net in nets]
    try:
        for net, precision in zip(nets, saved):
            if precision is not None:
                net.precision_ = "fp32"
        return np.asarray(model.predict(batch.reshape(len(batch), -1)), dtype=np.float64)
    finally:
        for net, precision in zip(nets, saved):
            if precision is not None:
                net.precision_ = precision


def check_batch(n=CHECK_BATCH, seed=0) -> np.ndarray:
    """Crops to compare the graph with torch on: half smooth random images, half the
    built-in synthetic faces (float32 (n, 96, 96), 0..255)."""
    from ..data.synthetic import make_faces
    rng = np.random.default_rng(seed)
    faces = make_faces(n - n // 2, seed=seed)[0].reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    noise = rng.uniform(0, 255, (n // 2, 12, 12)).astype(np.float32)
    import cv2
    smooth = np.stack([cv2.resize(k, (IMAGE_SIDE, IMAGE_SIDE), interpolation=cv2.INTER_CUBIC)
                       for k in noise])
    return np.clip(np.concatenate([faces.astype(np.float32), smooth]), 0, 255).astype(np.float32)


def mirror_sum_of(model, flipped) -> float:
    """The mirror axis that ``flipped`` (``tta.flip_tta(model)``) uses for ``model`` (x -> S -
    x), read off flip TTA itself rather than assumed: for a crop and its mirror, flip TTA's answer is
    (p + mirror(q)) / 2, so mirror(q) = 2 TTA - p, and S = mirror(q)_x + q_x(swapped)."""
    from ..keypoints import mirror_images
    crops = check_batch(8, seed=1).reshape(8, -1)
    p = np.asarray(model.predict(crops), dtype=np.float64)
    q = np.asarray(model.predict(mirror_images(crops)), dtype=np.float64)
    both = np.asarray(flipped.predict(crops), dtype=np.float64)
    mirrored = 2 * both - p
    swapped = q.copy()
    for a, b in flip_pairs():
        swapped[:, [a, b]] = q[:, [b, a]]
    sums = (mirrored + swapped)[:, 0::2]
    if np.ptp(sums) > 1e-2:
        raise ValueError("cannot read the mirror axis off flip_tta for this model")
    return float(np.round(sums.mean(), 4))
