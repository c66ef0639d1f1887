"""Estimators made of estimators: seed and fold ensembles, the tutorial's specialists, and
flip test-time augmentation."""
from .._lazy import exports

EXPORTS = {
    "ensemble": ("SeedEnsemble", "FoldEnsemble"),
    "specialists": ("Specialists",),
    "tta": ("FlipTTA", "flip_tta"),
    "onnxexport": ("export_onnx", "exported_nets"),
}
__all__, __getattr__, __dir__ = exports(__name__, EXPORTS)
