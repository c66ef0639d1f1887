"""Choosing models: cross-validation and grid search over scikit-learn's tools, scored in
pixels."""
from .._lazy import exports

EXPORTS = {
    "selection": ("CVResult", "cross_validate_net", "grid_search", "param_grid", "grid_table",
                  "format_grid", "parse_floats", "dask_backend", "DEFAULT_LRS",
                  "DEFAULT_MOMENTA"),
}
__all__, __getattr__, __dir__ = exports(__name__, EXPORTS)
