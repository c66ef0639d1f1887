"""`kfkd export` as a library: a saved model -> its ONNX graph (photo/onnxgraph.py says what
the graph holds and how it is checked). Here: which nets of the model the graph computes
and how it combines them, and the mirror axis its flip TTA uses."""
from __future__ import annotations

from pathlib import Path

from ..keypoints import IMAGE_SIDE, N_TARGETS
from ..photo.mtcnngraph import MTCNN_KEY, mtcnn_graphs
from ..photo.onnxgraph import mirror_sum_of, write_graph

__all__ = ["export_onnx", "exported_nets", "exported_graph"]


def export_onnx(model_path, out=None, trust=False, say=print) -> Path:
    """Export the model at ``model_path`` to ``out`` (default: the same path with .onnx),
    checked against torch first. Returns the ONNX path."""
    from ..utils import modelfile
    from .tta import flip_tta
    model_path = Path(model_path)
    out = Path(out) if out else model_path.with_suffix(".onnx")
    if out.resolve() == model_path.resolve():
        raise ValueError(f"{out}: the ONNX file would replace the model it comes from; "
                         "give --out another name")
    model = modelfile.load_model(model_path, trust=trust)
    from ..net.estimator import pixel_origin_of
    nets, combine = exported_graph(model, model_path)
    mirror = mirror_sum_of(model, flip_tta(model))
    companions, record = _mtcnn(out, model_path, say)
    return write_graph(model, nets, model_path, out, mirror, say, extra={MTCNN_KEY: record},
                       companions=companions, pixel_origin=pixel_origin_of(model),
                       combine=combine)


def _mtcnn(out, model_path, say):
    """MTCNN's nets to write beside ``out`` and their record, or nothing where
    facenet-pytorch is absent: predict with the .onnx then finds faces with Haar."""
    try:
        return mtcnn_graphs(out, model_path, say=say)
    except ValueError as exc:
        if "facenet-pytorch" not in str(exc):
            raise
        say(f"MTCNN not exported ({exc}); predict with {out.name} will find faces with Haar")
        return {}, None


def exported_nets(model, path) -> list:
    """The KeypointNets the graph computes: one net's pipeline (pixels -> net), as kfkd
    train saves net1 ... net8, or each net of a seed or fold ensemble of such pipelines, or
    of such ensembles (the graph then averages them, as the ensembles' predict does)."""
    return [net for net, _ in _weighted_nets(model, path)]


def _weighted_nets(model, path) -> list:
    """[(net, weight)]: the nets and their weights in the model's mean (summing to 1)."""
    from .ensemble import FoldEnsemble, SeedEnsemble
    if isinstance(model, (SeedEnsemble, FoldEnsemble)):
        members = model.estimators_
        return [(net, weight / len(members)) for member in members
                for net, weight in _weighted_nets(member, path)]
    net = _pipeline_net(model)
    if net is None:
        raise ValueError(f"{path}: holds a {type(model).__name__}; export handles one net's "
                         "pipeline (pixels -> net), as kfkd train saves net1 ... net8, a seed "
                         "or fold ensemble of them, or a stack of those (kfkd stack)")
    return [(net, 1.0)]


def exported_graph(model, path) -> tuple[list, tuple | None]:
    """(nets, combine): the KeypointNets the graph computes and how it combines their
    keypoints. ``combine`` None: their plain mean. Else (matrix (nets * 30, 30), bias (30,)):
    each net's keypoints weighted as in the model's nested means, and for a stack
    (meta/stack.py) then the meta-model's linear map, as its predict computes them."""
    import numpy as np

    from .stack import StackedKeypoints
    k = N_TARGETS
    if isinstance(model, StackedKeypoints):
        k = len(model.intercept_)
        parts = [(model.coef_[m * k:(m + 1) * k], _weighted_nets(member, path))
                 for m, member in enumerate(model.estimators_)]
        bias = np.asarray(model.intercept_, dtype=np.float64)
    else:
        weighted = _weighted_nets(model, path)
        if len({weight for _, weight in weighted}) == 1:
            return [net for net, _ in weighted], None
        parts, bias = [(np.eye(k), weighted)], np.zeros(k)
    nets = [net for _, weighted in parts for net, _ in weighted]
    matrix = np.concatenate([block * weight for block, weighted in parts
                             for _, weight in weighted])
    return nets, (matrix, bias)


def _pipeline_net(model):
    from sklearn.pipeline import Pipeline
    from ..net.estimator import KeypointNet
    from ..net.pipeline import PixelScaler
    if (isinstance(model, Pipeline) and len(model.steps) == 2
            and isinstance(model.steps[0][1], PixelScaler)
            and isinstance(model.steps[1][1], KeypointNet)
            and model.steps[0][1].n_pixels in (None, IMAGE_SIDE * IMAGE_SIDE)):
        return model.steps[1][1]
    return None
