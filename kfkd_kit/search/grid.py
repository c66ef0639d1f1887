"""The grid search over lr x momentum (``GridSearchCV``), its table and its heatmap; the
scorer, progress lines and Dask backend it shares with cross-validation are selection.py's."""
from __future__ import annotations

import math
import time
from contextlib import closing

import numpy as np
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, ParameterGrid

from .. import configs
from ..net.nested import inner_net, net_prefix
from ..data.splits import grouped_kfold
from .selection import ProgressScorer, _check_xy, _dask_label, _max_epochs, _parallel

DEFAULT_LRS = (0.001, 0.003, 0.01, 0.03)
DEFAULT_MOMENTA = (0.8, 0.9, 0.95)


def param_grid(lrs=DEFAULT_LRS, momenta=DEFAULT_MOMENTA, prefix="net__") -> dict:
    """{prefix + "lr": lrs, prefix + "optimizer__momentum": momenta}, checked."""
    lrs, momenta = [float(v) for v in lrs], [float(v) for v in momenta]
    if not lrs or not momenta:
        raise ValueError("the grid needs at least one learning rate and one momentum")
    if any(not (v > 0 and math.isfinite(v)) for v in lrs):
        raise ValueError(f"learning rates must be positive, got {lrs}")
    if any(not 0 <= v < 1 for v in momenta):
        raise ValueError(f"momenta must be in [0, 1), got {momenta}")
    if len(set(lrs)) != len(lrs) or len(set(momenta)) != len(momenta):
        raise ValueError("the grid has repeated values")
    return {prefix + "lr": lrs, prefix + "optimizer__momentum": momenta}


def _lr(params: dict):
    return next(v for k, v in params.items() if k == "lr" or k.endswith("__lr"))


def _momentum(params: dict):
    return next(v for k, v in params.items() if k.endswith("momentum"))


def parse_floats(text) -> list[float]:
    """'0.001,0.01 0.1' -> [0.001, 0.01, 0.1] (for LRS=/MOMENTA= and --lrs/--momenta)."""
    if text is None:
        return None
    if isinstance(text, (list, tuple)):
        text = ",".join(str(t) for t in text)
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise ValueError(f"expected numbers separated by commas, got {text!r}") from None


def grid_search(estimator, X, y, lrs=DEFAULT_LRS, momenta=DEFAULT_MOMENTA, folds=3, random_state=0,
                scheduler=None, dask_workers=None, refit=False, name="custom",
                say=print) -> GridSearchCV:
    """GridSearchCV of an unfitted estimator over lr x momentum with the pixel-RMSE scorer;
    returns it fitted.

    Folds are ``splits.grouped_kfold(X, folds, random_state)``; every candidate's net
    keeps the estimator's own seed, so a search is reproducible, in-process or on Dask.
    ``refit=True`` refits the best candidate on all rows (``search.best_estimator_``; see
    ``save_refit``). The search also gets ``run_info_`` (net, folds, seed, epochs, rows,
    seconds, ...) for ``write_grid``.
    """
    X, y = _check_xy(X, y, folds)
    template = clone(estimator)
    scheduled = [cb for cb, _ in _named_callbacks(template)
                 if cb in ("lr_schedule", "momentum_schedule")]
    if scheduled:
        raise ValueError(f"{name} sets lr/momentum every epoch or batch ({', '.join(scheduled)}), "
                         "so a grid over them would change nothing; search net1-net3 instead")
    if inner_net(template).optimizer is not torch.optim.SGD:
        raise ValueError(f"{name} does not use SGD with momentum; search net1-net3 instead")
    grid = param_grid(lrs, momenta, prefix=net_prefix(template))
    splits = grouped_kfold(X, folds, random_state)
    candidates = list(ParameterGrid(grid))
    scorer = ProgressScorer(X, splits, candidates=candidates, say=say,
                            progress=not (scheduler or dask_workers))
    lrs, momenta = _lr(grid), _momentum(grid)
    say(f"grid search of {name}: {len(lrs)} lr x {len(momenta)} "
        f"momentum = {len(candidates)} candidates x {folds} folds = "
        f"{len(candidates) * folds} fits on {len(X)} rows ({_max_epochs(template)} epochs "
        f"per fit, folds seeded with {random_state})" + ("; then refit of the best on all rows" if refit else ""))
    context, n_jobs = _parallel(scheduler, dask_workers, say)
    search = GridSearchCV(template, grid, scoring=scorer, cv=splits, refit=bool(refit),
                          n_jobs=n_jobs, error_score="raise", verbose=0)
    start = time.perf_counter()
    with context, closing(scorer):
        search.fit(X, y)
    search.run_info_ = {
        "net": name, "folds": folds, "seed": random_state, "epochs": _max_epochs(template),
        "rows": len(X), "lrs": lrs, "momenta": momenta, "settings": configs.settings(template),
        "dask": _dask_label(scheduler, dask_workers),
        "seconds": round(time.perf_counter() - start, 3)}
    return search


def _named_callbacks(estimator):
    callbacks = inner_net(estimator).callbacks or []
    return [(cb if isinstance(cb, tuple) else (type(cb).__name__, cb)) for cb in callbacks]


def grid_table(search) -> list[dict]:
    """One dict per candidate (lr, momentum, mean/std RMSE px, rank), best first."""
    results = search.cv_results_
    rows = []
    for i, params in enumerate(results["params"]):
        rows.append({"rank": int(results["rank_test_score"][i]),
                     "lr": _lr(params), "momentum": _momentum(params),
                     "mean_rmse_px": float(-results["mean_test_score"][i]),
                     "std_rmse_px": float(results["std_test_score"][i]),
                     "mean_fit_seconds": float(results["mean_fit_time"][i])})
    return sorted(rows, key=lambda r: (r["rank"], r["lr"], r["momentum"]))


def format_grid(search) -> str:
    lines = [f"{'rank':>4}  {'lr':>8}  {'momentum':>8}  {'mean_rmse_px':>12}  "
             f"{'std_px':>7}  {'fit_s':>7}"]
    for row in grid_table(search):
        lines.append(f"{row['rank']:>4}  {row['lr']:>8g}  {row['momentum']:>8g}  "
                     f"{row['mean_rmse_px']:>12.3f}  {row['std_rmse_px']:>7.3f}  "
                     f"{row['mean_fit_seconds']:>7.1f}")
    best = grid_table(search)[0]
    lines.append(f"best: lr={best['lr']:g}, momentum={best['momentum']:g}: "
                 f"{best['mean_rmse_px']:.3f} ± {best['std_rmse_px']:.3f} px")
    return "\n".join(lines)


def heatmap_matrix(search):
    """(lrs ascending, momenta ascending, mean RMSE px matrix lr x momentum; NaN where absent)."""
    results = search.cv_results_
    lrs = sorted({_lr(p) for p in results["params"]})
    momenta = sorted({_momentum(p) for p in results["params"]})
    rmse = np.full((len(lrs), len(momenta)), np.nan)
    for params, score in zip(results["params"], results["mean_test_score"]):
        rmse[lrs.index(_lr(params)), momenta.index(_momentum(params))] = -score
    return lrs, momenta, rmse
