"""Estimators made of estimators: seed and fold ensembles, the tutorial's specialists, stacks of
models under a meta-model, and flip test-time augmentation."""
from .._lazy import exports

EXPORTS = {
    "ensemble": ("SeedEnsemble", "FoldEnsemble"),
    "specialists": ("Specialists",),
    "tta": ("FlipTTA", "flip_tta"),
    "stack": ("StackedKeypoints", "fit_meta", "apply_meta", "nested_cv_predictions"),
    "onnxexport": ("export_onnx", "exported_nets"),
    "photomodel": ("load_keypoints", "no_model_line"),
}
__all__, __getattr__, __dir__ = exports(__name__, EXPORTS)
