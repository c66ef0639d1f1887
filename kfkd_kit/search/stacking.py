"""`kfkd stack` as a library: cv runs' out-of-fold predictions -> a stacked model.

The runs must share their training data (its fingerprint and rows) and their folds (each
row in the same fold: `kfkd cv` with the same FOLDS and SEED on the same data gives the
same folds, whatever the model). Each meta-model of ``meta.stack.METHODS`` is scored by a
nested cross-validation over those same folds (fitted on the other folds' out-of-fold rows,
scored on the fold's), beside each run's own out-of-fold RMSE; the best is refitted on every
out-of-fold row. Every RMSE here is over all labelled values of all rows (the folds pooled).

The members are, by ``MEMBERS``:

- ``refit`` (the default): each run's estimator trained once more on every row
  (``refit_members``, on Dask workers when asked), which costs about 1/(k-1) of the cv
  runs' training again; the meta-model, learnt from the fold models' out-of-fold
  predictions, is applied to these;
- ``folds``: the fold models each run kept (`kfkd cv --keep-models`), as one FoldEnsemble
  each: the very models whose out-of-fold predictions the meta-model learnt from, so no
  member is trained again.

On faces15's held-out split the refitted members scored better for every meta-model
(docs/RESULTS.md, "Stacking: refitted members or fold models").
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..meta.stack import MEMBERS, METHODS, StackedKeypoints, fit_meta, nested_cv_predictions
from ..net.metrics import masked_rmse_px
from .oof import OOFRun

__all__ = ["MEMBERS", "StackScores", "check_runs", "score_stacks", "stack_model",
           "load_members", "refit_members"]



@dataclass
class StackScores:
    """The nested-CV RMSE px of each method, each run's own out-of-fold RMSE, the best."""
    runs: list                       # the runs' names
    members: dict                    # run name -> its out-of-fold RMSE px
    methods: dict                    # method -> nested-CV RMSE px
    best: str
    coef: np.ndarray = field(repr=False, default=None)       # the best, refitted on all rows
    intercept: np.ndarray = field(repr=False, default=None)

    @property
    def rmse_px(self) -> float:
        return self.methods[self.best]

    def table(self) -> str:
        lines = [f"{'candidate':<40}  {'rmse_px':>8}  what"]
        for name, rmse in self.members.items():
            lines.append(f"{name:<40}  {rmse:>8.4f}  a member's out-of-fold predictions")
        what = {"mean": "the plain mean of the members",
                "nnls": "non-negative least squares weights per keypoint (nested CV)",
                "elasticnet": "ElasticNet per keypoint on all members' columns (nested CV)"}
        for method, rmse in self.methods.items():
            mark = "  <- best" if method == self.best else ""
            lines.append(f"{'stack: ' + method:<40}  {rmse:>8.4f}  {what[method]}{mark}")
        return "\n".join(lines)

    def record(self) -> dict:
        return {"runs": self.runs, "members_oof_rmse_px": self.members,
                "nested_cv_rmse_px": self.methods, "method": self.best}


def check_runs(runs: list[OOFRun], training=None) -> None:
    """ValueError (one line) unless the runs share their data and folds, and match
    ``training`` (the TrainingData they were run on) when it is given."""
    if not runs:
        raise ValueError("no runs to stack: give RUNS=cv/<run>,cv/<run>,...")
    first = runs[0]
    names = [run.name for run in runs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"{twice[0]}: the same run is given twice")
    for run in runs:
        if training is not None:
            run.check_data(training, "stack runs of the data given with DATA=")
        if (run.record.get("data") or {}).get("fingerprint") != \
                (first.record.get("data") or {}).get("fingerprint"):
            raise ValueError(f"{run.path}: ran on other data than {first.path} (their "
                             "fingerprints differ); stack runs of the same data")
        if not np.array_equal(run.fold_of, first.fold_of):
            raise ValueError(f"{run.path}: its folds differ from {first.path}'s (folds "
                             f"{run.record.get('folds')}, seed {run.record.get('seed')} against "
                             f"{first.record.get('folds')}, seed {first.record.get('seed')}); "
                             "run make cv with the same FOLDS and SEED for every member")


def score_stacks(runs: list[OOFRun], y, groups=None, methods=METHODS,
                 say=print) -> StackScores:
    """Each method's nested-CV RMSE (over the runs' shared folds), each run's out-of-fold
    RMSE, and the best method refitted on all out-of-fold rows."""
    from ..utils.progress import bar
    predictions = np.stack([run.predictions for run in runs])
    fold_of = runs[0].fold_of
    y = np.asarray(y, dtype=np.float64)
    members = {run.name: masked_rmse_px(y, run.predictions) for run in runs}
    scores = {}
    folds = len(np.unique(fold_of))
    with bar(total=len(methods) * folds, desc="nested cv of the stacks", unit="fit") as progress:
        for method in methods:
            nested = nested_cv_predictions(predictions, y, fold_of, method, groups,
                                           on_fold=lambda: progress.update(1))
            scores[method] = masked_rmse_px(y, nested)
    best = min(scores, key=lambda method: (scores[method], methods.index(method)))
    coef, intercept = fit_meta(predictions, y, best, groups)
    result = StackScores(runs=[run.name for run in runs], members=members, methods=scores,
                         best=best, coef=coef, intercept=intercept)
    best_member = min(members, key=members.get)
    if members[best_member] < result.rmse_px:
        say(f"NOTE: the member {best_member} alone ({members[best_member]:.4f} px) beats "
            f"every stack; the stack keeps {best}")
    return result


def load_members(runs: list[OOFRun], trust=False) -> list:
    """Each run's kept fold models (one FoldEnsemble each), checked to be the very file its
    cv run saved. ValueError (one line) for a run that kept none, or whose file changed."""
    from pathlib import Path
    from ..utils.modelfile import load_model, sha256_of
    missing = [run for run in runs if not run.model]
    if missing:
        raise ValueError(f"{missing[0].path}: the run kept no fold models; run make cv again "
                         "with KEEP_MODELS=1 (and MODEL= a file of its own)")
    members = []
    for run in runs:
        path = Path(run.model["path"])
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the fold models of {run.path} are missing; run "
                                    "make cv again with KEEP_MODELS=1")
        if sha256_of(path) != run.model.get("sha256"):
            raise ValueError(f"{path}: not the fold models {run.path} saved (its sha256 "
                             "differs: another cv run saved over it?); give each cv run its "
                             "own MODEL=")
        members.append(load_model(path, trust=trust))
    return members


def stack_model(runs: list[OOFRun], scores: StackScores, members: list) -> StackedKeypoints:
    """The stacked model: the members and the best meta-model, one estimator."""
    return StackedKeypoints.from_fitted(members, scores.coef, scores.intercept, scores.best,
                                        labels=[run.name for run in runs])


def _fit(estimator, X, y):
    return estimator.fit(X, y)


def refit_members(members: list, X, y, scheduler=None, dask_workers=None, say=print) -> list:
    """Each member's template (the unfitted estimator its cv run cross-validated, with its
    settings, seed and budget per fit) trained on every row of ``X``, ``y``: the members
    at once on Dask workers with ``scheduler`` / ``dask_workers``, else one after another."""
    from joblib import Parallel, delayed
    from sklearn.base import clone
    from .selection import _parallel
    templates = []
    for member in members:
        template = getattr(member, "estimator", None)
        if template is None:
            raise ValueError(f"{type(member).__name__}: has no template to refit (a fold "
                             "ensemble of make cv KEEP_MODELS=1 has one)")
        templates.append(clone(template))
    say(f"refitting {len(templates)} member{'s' if len(templates) != 1 else ''} on all "
        f"{len(X)} rows")
    context, n_jobs = _parallel(scheduler, dask_workers, say)
    with context:
        return Parallel(n_jobs=n_jobs)(delayed(_fit)(t, X, y) for t in templates)
