"""`kfkd export` as a library: a saved model -> its ONNX graph (photo/onnxgraph.py says what
the graph holds and how it is checked). Here: which nets of the model the graph computes
and how it combines them, and the mirror axis its flip TTA uses."""
from __future__ import annotations

from pathlib import Path

from ..keypoints import IMAGE_SIDE
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
    train saves net1 ... net8, or each member of a seed or fold ensemble of such pipelines
    (the graph then averages them, as the ensemble's predict does)."""
    from .ensemble import FoldEnsemble, SeedEnsemble
    members = (model.estimators_ if isinstance(model, (SeedEnsemble, FoldEnsemble))
               else [model])
    nets = [_pipeline_net(member) for member in members]
    if None in nets:
        raise ValueError(f"{path}: holds a {type(model).__name__}; export handles one net's "
                         "pipeline (pixels -> net), as kfkd train saves net1 ... net8, a seed "
                         "or fold ensemble of them, or a stack of those (kfkd stack)")
    return nets


def exported_graph(model, path) -> tuple[list, tuple | None]:
    """(nets, combine): the KeypointNets the graph computes and how it combines their
    keypoints. ``combine`` None: their mean (``exported_nets``). For a stack (meta/stack.py),
    (matrix (nets * 30, 30), bias (30,)): each member's nets averaged, then the meta-model's
    linear map, as ``StackedKeypoints.predict`` computes it."""
    import numpy as np

    from .stack import StackedKeypoints
    if not isinstance(model, StackedKeypoints):
        return exported_nets(model, path), None
    k = len(model.intercept_)
    nets, blocks = [], []
    for m, member in enumerate(model.estimators_):
        member_nets = exported_nets(member, path)
        nets += member_nets
        blocks += [model.coef_[m * k:(m + 1) * k] / len(member_nets)] * len(member_nets)
    return nets, (np.concatenate(blocks), np.asarray(model.intercept_, dtype=np.float64))


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
