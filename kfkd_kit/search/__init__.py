"""Choosing models: cross-validation and grid search over scikit-learn's tools, scored in
pixels; cv's out-of-fold predictions and the stacking of cv runs; the Optuna search of
`kfkd tune`, the lr range test, every configuration on one split (zoo), and the error
analysis of a model on held-out rows (`kfkd report`)."""
from .._lazy import exports

EXPORTS = {
    "selection": ("CVResult", "cross_validate_net", "dask_backend", "rmse_px_scorer",
                  "out_of_fold"),
    "oof": ("OOFRun", "read_run", "find_run", "oof_tables", "oof_record", "oof_paths",
            "folds_sha256"),
    "stacking": ("StackScores", "check_runs", "score_stacks", "stack_model", "load_members"),
    "grid": ("grid_search", "param_grid", "grid_table", "format_grid", "parse_floats",
             "DEFAULT_LRS", "DEFAULT_MOMENTA"),
    "space": ("Dim", "SPACE", "search_space", "net_params", "starting_point"),
    "study": ("tune", "same_epochs_pruner", "default_pruner", "holdout_rmse"),
    "storage": ("open_storage",),
    "lrfinder": ("lr_range_test", "range_test_estimator", "suggest", "RangeRecorder"),
    "analysis": ("analyse", "Analysis", "held_out_rows", "per_face_rmse", "worst_faces",
                 "keypoint_table", "bias_table", "completeness_table"),
    "report_html": ("report_page",),
    "audit_html": ("audit_page",),
    "zoo": ("run_zoo",),
}
__all__, __getattr__, __dir__ = exports(__name__, EXPORTS)
