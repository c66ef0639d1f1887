"""Choosing models: cross-validation and grid search over scikit-learn's tools, scored in
pixels; the Optuna search of `kfkd tune`, the lr range test, every configuration on one
split (zoo), and the error analysis of a model on held-out rows (`kfkd report`)."""
from .._lazy import exports

EXPORTS = {
    "selection": ("CVResult", "cross_validate_net", "dask_backend", "rmse_px_scorer"),
    "grid": ("grid_search", "param_grid", "grid_table", "format_grid", "parse_floats",
             "DEFAULT_LRS", "DEFAULT_MOMENTA"),
    "space": ("Dim", "SPACE", "search_space", "net_params", "starting_point"),
    "study": ("tune", "open_storage", "same_epochs_pruner", "default_pruner", "holdout_rmse"),
    "lrfinder": ("lr_range_test", "range_test_estimator", "suggest", "RangeRecorder"),
    "analysis": ("analyse", "Analysis", "held_out_rows", "per_face_rmse", "worst_faces",
                 "keypoint_table", "bias_table", "completeness_table"),
    "report_html": ("report_page",),
    "audit_html": ("audit_page",),
    "zoo": ("run_zoo",),
}
__all__, __getattr__, __dir__ = exports(__name__, EXPORTS)
