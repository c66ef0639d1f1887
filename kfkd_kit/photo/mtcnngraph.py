"""MTCNN's three nets (P-, R- and O-net, from facenet-pytorch's wheel) as ONNX files, written
by `kfkd export` beside the keypoint graph (with it, once its checks pass), so that `kfkd
predict --model M.onnx` finds faces as the torch path does, without torch (mtcnnonnx.py runs
them).

Files: ``<stem>.mtcnn-pnet.onnx``, ``-rnet``, ``-onet`` beside ``<stem>.onnx``. Each net is
checked against torch on a random batch before anything is written; their names and sha256
go into the keypoint graph's metadata (key MTCNN_KEY), so the keypoint file's own sha256
(checked against its JSON) vouches for them too.

Inputs, float32 NCHW RGB scaled as MTCNN scales it ((v - 127.5) / 128): pnet ``image``
(1, 3, h, w) -> ``regression`` (1, 4, h', w'), ``probability`` (1, 2, h', w'); rnet
``crops`` (n, 3, 24, 24) -> ``regression`` (n, 4), ``probability`` (n, 2); onet ``crops``
(n, 3, 48, 48) -> ``regression`` (n, 4), ``landmarks`` (n, 10), ``probability`` (n, 2).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

__all__ = ["mtcnn_graphs", "mtcnn_paths", "NETS", "MTCNN_KEY", "TOLERANCE"]

MTCNN_KEY = "mtcnn"
NETS = ("pnet", "rnet", "onet")
TOLERANCE = 1e-4          # on the nets' outputs: probabilities and box/landmark offsets
OPSET = 17
_OUTPUTS = {"pnet": ("regression", "probability"), "rnet": ("regression", "probability"),
            "onet": ("regression", "landmarks", "probability")}
_SIDE = {"rnet": 24, "onet": 48}


def mtcnn_paths(out) -> dict:
    """{net: path} of the three files beside the keypoint graph ``out``."""
    out = Path(out)
    stem = out.name[:-len(out.suffix)] if out.suffix else out.name
    return {net: out.with_name(f"{stem}.mtcnn-{net}.onnx") for net in NETS}


def _export(module, net, example, name, dynamic):
    import io
    import warnings

    import torch
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buffer, input_names=[name],
                          output_names=list(_OUTPUTS[net]), opset_version=OPSET,
                          dynamic_axes=dynamic, dynamo=False)
    return buffer.getvalue()


def _check(module, net, payload, batch, source):
    import onnxruntime as ort
    import torch
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: batch})
    with torch.no_grad():
        expected = [t.numpy() for t in module(torch.as_tensor(batch))]
    worst = max(float(np.max(np.abs(g - e))) for g, e in zip(got, expected))
    if not np.isfinite(worst) or worst > TOLERANCE:
        raise ValueError(f"{source}: MTCNN's {net} in ONNX differs from torch by up "
                         f"to {worst:.2g} (tolerance {TOLERANCE:g}); nothing written")
    return worst


def mtcnn_graphs(out, source, say=print):
    """facenet-pytorch's P-, R- and O-net as ONNX, each checked against torch, to go beside
    the keypoint graph ``out``: ({path: bytes} for onnxgraph.write_graph's ``companions``,
    the record for its metadata {net: {"file", "sha256"}}). ``source``: the model named in
    messages. Nothing is written here."""
    import torch

    from .faces import load_mtcnn
    mtcnn = load_mtcnn()
    rng = np.random.default_rng(0)
    payloads, worst = {}, 0.0
    for net in NETS:
        module = getattr(mtcnn, net).float().eval()
        if net == "pnet":
            batch = rng.uniform(-1, 1, (1, 3, 57, 43)).astype(np.float32)
            dynamic = {"image": {2: "h", 3: "w"}, "regression": {2: "h", 3: "w"},
                       "probability": {2: "h", 3: "w"}}
            payload = _export(module, net, torch.as_tensor(batch), "image", dynamic)
        else:
            side = _SIDE[net]
            batch = rng.uniform(-1, 1, (5, 3, side, side)).astype(np.float32)
            dynamic = {"crops": {0: "n"}, **{o: {0: "n"} for o in _OUTPUTS[net]}}
            payload = _export(module, net, torch.as_tensor(batch[:2]), "crops", dynamic)
        worst = max(worst, _check(module, net, payload, batch, source))
        payloads[net] = payload
    paths = mtcnn_paths(out)
    record = {net: {"file": paths[net].name, "sha256": hashlib.sha256(payloads[net]).hexdigest()}
              for net in NETS}
    say(f"MTCNN's P-, R- and O-net go beside it "
        f"({', '.join(r['file'] for r in record.values())}); onnxruntime and torch agree to "
        f"{worst:.1e}")
    return {paths[net]: payloads[net] for net in NETS}, record
