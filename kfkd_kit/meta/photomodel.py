"""A model file as the keypoints backend of the photo pipeline (photo/align.py): what
`kfkd predict` and `kfkd serve` load.

An ``.onnx`` file runs through onnxruntime (photo/onnxmodel.py) and never imports torch; any
other model file is loaded by utils/modelfile.py and wrapped in flip TTA (meta/tta.py) when
asked. It sits in meta/, not photo/, because flip TTA around a saved model is a meta-estimator,
and photo/ may not import the layers above it.
"""
from __future__ import annotations

from pathlib import Path

from ..photo import framing
from ..photo.align import SavedModel

__all__ = ["load_keypoints", "no_model_line", "pick_detector"]


def no_model_line(path) -> str:
    """One line for a model file that does not exist, naming the make command that makes
    one there: `make train` for the default models/net1.joblib, `make train NET=net8` for
    models/net8.joblib, `make export` for an .onnx file."""
    path = Path(path)
    if path.suffix == ".onnx":
        source = path.with_suffix(".joblib")
        return (f"no model at {path}: export one with `make export MODEL={source} OUT={path}` "
                "(after training it)")
    from ..utils.modelfile import _NET_NAME
    named = path.parent == Path("models") and path.suffix == ".joblib" and _NET_NAME.fullmatch(path.stem)
    if named:
        command = "make train" if path.stem == "net1" else f"make train NET={path.stem}"
    else:
        command = f"make train NET=NET MODEL={path}"
    return f"no model at {path}: train one with `{command}`"


def load_keypoints(model_path, trust=False, tta=False, data_dir=None, tta_shift=0):
    """The backend for ``model_path``: an ``.onnx`` file through onnxruntime (no torch), any
    other through modelfile.load_model. Its mean layout and pixel origin come with the model
    (the keypoints it gives are in that origin, as its labels were); a model saved
    without one (before ``mean_keypoints_``, or not by ``kfkd train``) takes it from the
    training data in ``data_dir``, and without that is refused in one line. A missing file
    is a FileNotFoundError whose one line says which command makes it (``no_model_line``)."""
    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(no_model_line(path))
    tta = tta or bool(tta_shift)                 # a shift grid is flip TTA on shifted copies
    if path.suffix == ".onnx":
        from ..photo.onnxmodel import OnnxKeypoints
        backend = OnnxKeypoints(path, trust=trust, tta=tta, tta_shift=tta_shift)
    else:
        from ..net.estimator import pixel_origin_of
        from ..utils.modelfile import load_model
        model = load_model(path, trust=trust)
        origin = pixel_origin_of(model)        # the nets' own: any model, any way it was saved
        if tta:
            from .tta import flip_tta
            backend = SavedModel(flip_tta(model, shift=tta_shift), layout=framing.layout_of(model),
                                 pixel_origin=origin)
        else:
            backend = SavedModel(model, pixel_origin=origin)
    if data_dir is not None:
        from ..data import load_training
        backend.layout = framing.mean_layout(load_training(data_dir).y)
    if backend.layout is None:
        raise ValueError(f"{path}: the model carries no mean keypoint layout (saved before "
                         "kfkd_kit stored one, or not by kfkd train); retrain it, or pass "
                         "--data FOLDER with the training data to measure it from")
    return backend


def pick_detector(keypoints, name, min_size):
    """``name`` (auto, mtcnn, haar) for the backend: an .onnx model's MTCNN runs on the nets
    exported beside it (no torch); auto is mtcnn, or haar for an .onnx exported without them."""
    exported = keypoints.detector(min_size) if name in ("auto", "mtcnn") and hasattr(
        keypoints, "detector") else None
    if exported is not None:
        return exported
    if name == "auto":
        return "haar" if hasattr(keypoints, "detector") else "mtcnn"
    return name
