"""`kfkd export`: a saved model as an ONNX graph (crop in, keypoints in pixels out), checked
against torch before anything is written, its sha256 recorded in the JSON beside it. The
export is meta/onnxexport.py's; the graph, its check and its record photo/onnxgraph.py's."""
from __future__ import annotations

from ..meta.onnxexport import export_onnx
from . import _options


def add_parser(sub):
    p = _options.command_parser(sub, "export")
    _options.add_model(p)
    _options.add_out(p, None, "the .onnx file (default: the model's path with .onnx)")
    _options.add_trust(p)
    p.set_defaults(func=run)


def run(args):
    print(export_onnx(args.model, args.out, trust=args.trust_model))
