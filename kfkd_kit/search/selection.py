"""Model selection: k-fold cross-validation, and what it shares with the grid search
(grid.py): the pixel scorer, one progress line per fit, Dask.

Everything here is plain scikit-learn on an unfitted estimator (``configs.build``'s):

- ``rmse_px_scorer`` - RMSE in pixels over the labelled (non-NaN) targets, as a scorer for
  ``cross_validate`` / ``GridSearchCV`` (sklearn's convention: it returns the *negative*
  RMSE, greater is better; ``scores_to_px`` turns such scores back into pixels).
- ``cross_validate_net`` - shuffled, seeded k-fold CV of an estimator; ``write_cv`` writes
  ``cv/<net>-<UTC time>.csv`` (one row per fold) and a JSON summary. With
  ``keep_models=True`` the k fold models come back as one ``ensemble.FoldEnsemble``.
- ``grid.grid_search`` - ``GridSearchCV`` over ``net__lr`` x ``net__optimizer__momentum``;
  ``write_grid`` writes the full ``cv_results_`` (CSV), the best parameters (JSON) and a
  heatmap (PNG); ``save_refit`` saves the refitted best model like ``make train`` does.
- ``dask_backend`` - runs either of them on a Dask cluster through joblib's dask backend:
  an existing scheduler (``tcp://host:8786``) or a local cluster of worker processes.

No leakage: each fold's net is fitted on that fold's training rows only, so its own
validation split (``valid_fraction``, off by default) and any early stopping see only
those rows; the held-out fold is used once, by the scorer, after the fit.

Progress is one line per fit - ``fold 2/5: rmse 2.913 px (41.2 s, 400 epochs)`` or
``candidate 3/12 (lr=0.01, momentum=0.9) fold 2/3: ...`` - printed by the scorer, which
recognises the fold by its rows and the candidate by its parameters. On Dask workers the
line reaches the client as an event (``PROGRESS_TOPIC``), which ``dask_backend`` passes to
its ``say`` once. Per-epoch tables follow the nets' own ``verbose``.

dask / distributed are imported only when a scheduler or local workers are asked for.
"""
from __future__ import annotations

import hashlib
import logging
import time
import uuid
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone
from sklearn.metrics import make_scorer
from sklearn.model_selection import cross_validate

from .. import configs
from ..meta.ensemble import FoldEnsemble
from ..net.nested import inner_net, nets
from ..net.metrics import masked_rmse_px
from ..data.splits import grouped_kfold

# The competition's score as an sklearn scorer: -RMSE px over labelled values.
rmse_px_scorer = make_scorer(masked_rmse_px, greater_is_better=False)


def scores_to_px(scores):
    """Scores of ``rmse_px_scorer`` (negative, greater is better) -> RMSE in pixels."""
    scores = np.asarray(scores, dtype=float)
    return -scores if scores.ndim else float(-scores)


# --------------------------------------------------------------------------- progress


def _rows_key(X) -> str:
    X = np.ascontiguousarray(X)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((X.shape, X.dtype.str)).encode())
    digest.update(memoryview(X).cast("B"))
    return digest.hexdigest()


def fit_summary(estimator) -> tuple[float | None, int | None]:
    """(training seconds, epochs run) of a fitted net or Pipeline, from skorch's history;
    of a model of several nets (an ensemble), (None, the most epochs any of them ran)."""
    found = [getattr(net, "history", None) for net in nets(estimator).values()]
    if len(found) > 1 and all(found):
        return None, max(len(history) for history in found)
    history = found[0] if len(found) == 1 else None
    if not history:
        return None, None
    return float(sum(row.get("dur", 0.0) for row in history)), len(history)


def _short(name: str) -> str:
    return name.split("__")[-1]


def format_params(params: dict) -> str:
    return ", ".join(f"{_short(k)}={v:g}" if isinstance(v, float) else f"{_short(k)}={v}"
                     for k, v in params.items())


class ProgressScorer:
    """``rmse_px_scorer`` that also reports each fit: fold k/K (recognised by the held-out
    rows) and, in a grid search, candidate i/N (recognised by the estimator's parameters).

    Returns exactly what ``rmse_px_scorer`` returns (negative RMSE px). Reports through
    ``say`` in this process; on a Dask worker (where ``say`` is not sent along) through
    ``distributed.print``, which the client prints. scikit-learn's own ``verbose`` lines
    give neither the candidate nor the epochs, and stay on the workers.
    ``progress``: also a tqdm bar over the fits (in-process searches; on a terminal only,
    see progress.bar), the lines printed above it; ``close()`` ends it.
    """

    def __init__(self, X, splits, candidates=None, say=print, progress=False):
        self.fold_of = {_rows_key(np.asarray(X)[test]): k for k, (_, test) in enumerate(splits)}
        self.n_folds = len(splits)
        self.candidates = None if candidates is None else [dict(c) for c in candidates]
        self.say = say
        self.bar = None
        if progress:   # in-process fits: a bar over them (progress.bar: terminals only)
            from ..utils.progress import bar
            self.bar = bar(total=self.n_folds * len(self.candidates or [None]),
                           desc="fits", unit="fit")

    def __call__(self, estimator, X, y):
        rmse = masked_rmse_px(y, estimator.predict(X))
        try:
            if self.bar is None:
                self._report(estimator, X, rmse)
            else:
                with self.bar.external_write_mode():   # the line above the bar
                    self._report(estimator, X, rmse)
                self.bar.update(1)
        except Exception:  # progress must never break a search
            pass
        return -rmse

    def close(self):
        if self.bar is not None:
            self.bar.close()

    def _report(self, estimator, X, rmse):
        fold = self.fold_of.get(_rows_key(X))
        where = f"fold {'?' if fold is None else fold + 1}/{self.n_folds}"
        if self.candidates:
            params = estimator.get_params()
            mine = {k: params.get(k) for k in self.candidates[0]}
            index = next((i for i, c in enumerate(self.candidates) if c == mine), None)
            where = (f"candidate {'?' if index is None else index + 1}/{len(self.candidates)}"
                     f" ({format_params(mine)}) {where}")
        seconds, epochs = fit_summary(estimator)
        details = [] if seconds is None else [f"{seconds:.1f} s", f"{epochs} epochs"]
        message = f"{where}: rmse {rmse:.3f} px" + (f" ({', '.join(details)})" if details else "")
        _emit(self.say, message)

    def __getstate__(self):
        # Sent to other processes (Dask workers): report through events there.
        state = dict(self.__dict__)
        state["say"] = None
        state["bar"] = None
        return state


PROGRESS_TOPIC = "kfkd-progress"   # a Dask worker's progress lines, as events to the client


def _emit(say, message):
    if say is not None:
        say(message)
        return
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):   # not on a Dask worker
        print(message, flush=True)
        return
    # an event with an id, which dask_backend's client says once: distributed may hand an
    # event to a client more than once, and its own print also prints on the worker, whose
    # stdout is the same terminal for a local cluster (each line came out four times)
    worker.log_event(PROGRESS_TOPIC, {"id": uuid.uuid4().hex, "line": message})


def _say_once(say):
    """A handler for PROGRESS_TOPIC events that says each line once."""
    seen = set()

    def handle(event):
        message = event[1] if isinstance(event, tuple) and len(event) == 2 else event
        if isinstance(message, dict) and message.get("id") not in seen:
            seen.add(message.get("id"))
            say(str(message.get("line")))
    return handle


# --------------------------------------------------------------------------- Dask


@contextmanager
def dask_backend(scheduler=None, n_workers=None, say=print, wait_timeout=60):
    """Run joblib-parallel code (GridSearchCV, cross_validate with ``n_jobs=-1``) on Dask.

    ``scheduler``: address of an existing cluster's scheduler (``tcp://host:8786``); else a
    ``LocalCluster`` of ``n_workers`` single-threaded worker *processes* is started on
    127.0.0.1 and closed afterwards. Each worker's torch runs on one thread, as Dask's
    nanny starts workers (its ``distributed.nanny.pre-spawn-environ`` sets OMP_NUM_THREADS
    and MKL_NUM_THREADS to 1), so results match an in-process run on one thread and the
    workers do not oversubscribe the cores. Yields the ``distributed.Client``; the workers'
    progress lines reach this terminal through ``distributed.print``.
    """
    try:
        import joblib
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - dask is an optional extra
        raise ValueError("the Dask backend needs dask and distributed: "
                         "pip install 'dask[distributed]'") from exc
    cluster = None
    if scheduler:
        say(f"connecting to the Dask scheduler at {scheduler}")
        client = Client(scheduler, timeout=wait_timeout)
    else:
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address="127.0.0.1:0")
        try:
            client = Client(cluster)
        except BaseException:
            cluster.close()
            raise
    try:
        if cluster is not None:
            client.wait_for_workers(len(cluster.workers), timeout=wait_timeout)
        n = sum(client.nthreads().values())
        client.subscribe_topic(PROGRESS_TOPIC, _say_once(say))
        say(f"Dask: {len(client.nthreads())} workers, {n} threads "
            f"({'local cluster' if cluster is not None else scheduler})")
        with joblib.parallel_config(backend="dask", n_jobs=-1, client=client,
                                    wait_for_workers_timeout=wait_timeout):
            yield client
    finally:
        client.close()
        if cluster is not None:
            # Workers that imported torch may take a few seconds to exit; the nanny then
            # kills them with a warning that only looks alarming.
            with _quiet_logger("distributed.nanny"):
                cluster.close()


@contextmanager
def _quiet_logger(name, level=logging.ERROR):
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(max(level, before))
    try:
        yield
    finally:
        logger.setLevel(before)


def _parallel(scheduler, dask_workers, say):
    """(context manager, n_jobs): the Dask backend when asked for, else in-process."""
    if scheduler or dask_workers:
        return dask_backend(scheduler, dask_workers, say=say), -1
    return nullcontext(), None


# --------------------------------------------------------------------------- inputs


def _max_epochs(estimator):
    return inner_net(estimator).max_epochs


def _check_xy(X, y, folds):
    X, y = np.asarray(X), np.asarray(y, dtype=np.float32)
    if X.ndim != 2 or y.ndim != 2 or len(X) != len(y):
        raise ValueError(f"need X (n, 9216) and y (n, k) with the same n; got {X.shape}, {y.shape}")
    if not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2, got {folds!r}")
    if len(X) < folds:
        raise ValueError(f"{len(X)} rows cannot be split into {folds} folds")
    return X, y


def _std(values):
    """Population std (ddof=0), as in GridSearchCV's std_test_score."""
    values = np.asarray(values, dtype=float)
    return float(values.std()) if values.size else float("nan")


# --------------------------------------------------------------------------- cross-validation


@dataclass
class CVResult:
    net: str
    folds: int
    seed: int
    epochs: int | None
    n_rows: int
    rows: list = field(default_factory=list)  # one dict per fold
    params: dict = field(default_factory=dict)
    seconds: float = 0.0
    ensemble: FoldEnsemble | None = None
    # out-of-fold predictions: every row by the fold model that did not train on it (n, k)
    # px; each row's fold (n,), 1..folds; each fold model's predictions of X_test (folds,
    # m, k) px, or None without test images
    oof: np.ndarray | None = None
    fold_of: np.ndarray | None = None
    test_predictions: np.ndarray | None = None
    # RMSE px over every labelled value of ``oof`` (the folds pooled): what stacking compares
    oof_rmse_px: float | None = None

    @property
    def rmse_px(self) -> list:
        return [row["rmse_px"] for row in self.rows]

    @property
    def mean_rmse_px(self) -> float:
        return float(np.mean(self.rmse_px))

    @property
    def std_rmse_px(self) -> float:
        return _std(self.rmse_px)

    def table(self) -> str:
        lines = [f"{'fold':>4}  {'train_rows':>10}  {'test_rows':>9}  {'rmse_px':>8}  "
                 f"{'fit_s':>7}  {'epochs':>6}"]
        for row in self.rows:
            epochs = "" if row["epochs_run"] is None else row["epochs_run"]
            lines.append(f"{row['fold']:>4}  {row['train_rows']:>10}  {row['test_rows']:>9}  "
                         f"{row['rmse_px']:>8.3f}  {row['fit_seconds']:>7.1f}  {epochs:>6}")
        lines.append(f"mean ± std RMSE: {self.mean_rmse_px:.3f} ± {self.std_rmse_px:.3f} px "
                     f"({self.folds} folds, {self.n_rows} rows)")
        return "\n".join(lines)

    def summary(self) -> dict:
        return {"kind": "cv", "net": self.net, "folds": self.folds, "seed": self.seed,
                "epochs": self.epochs, "rows": self.n_rows, "params": self.params,
                "mean_rmse_px": self.mean_rmse_px, "std_rmse_px": self.std_rmse_px,
                "std_ddof": 0, "per_fold_rmse_px": self.rmse_px, "per_fold": self.rows,
                "seconds": round(self.seconds, 3)}


def cross_validate_net(estimator, X, y, folds=5, random_state=0, keep_models=False, scheduler=None,
                       dask_workers=None, name="custom", say=print, X_test=None) -> CVResult:
    """Shuffled k-fold CV (``splits.grouped_kfold``: sklearn's shuffled KFold over groups of
    identical images, seeded with ``random_state``) of an unfitted
    estimator (``configs.build(name, ...)``), cloned for every fold.

    Every fold's model sees all of that fold's training rows and decides itself which it
    trains on (``complete_only``) and which it holds out for its own valid loss and early
    stopping (``valid_fraction``): all drawn from the fold's training rows. Each is scored
    on all of the held-out fold's labelled values.
    ``keep_models``: return the k fitted fold models as ``result.ensemble`` (FoldEnsemble).
    ``scheduler`` / ``dask_workers``: run the folds on Dask (see ``dask_backend``).

    Always: ``result.oof``, every row's prediction by the fold model that held it out, and
    ``result.fold_of``, its fold (1..k); with ``X_test`` (the test images),
    ``result.test_predictions``, each fold model's predictions of them. The folds depend
    on the images, ``folds`` and ``random_state`` only, so every model cross-validated on
    the same data with the same two gets the same folds (what stacking needs).
    """
    X, y = _check_xy(X, y, folds)
    template = clone(estimator)
    splits = grouped_kfold(X, folds, random_state)
    scorer = ProgressScorer(X, splits, say=say, progress=not (scheduler or dask_workers))
    say(f"{folds}-fold cross-validation of {name} on {len(X)} rows "
        f"({_max_epochs(template)} epochs per fit, folds seeded with {random_state})")
    context, n_jobs = _parallel(scheduler, dask_workers, say)
    start = time.perf_counter()
    with context, closing(scorer):
        out = cross_validate(template, X, y, cv=splits, scoring=scorer, n_jobs=n_jobs,
                             return_estimator=True, error_score="raise")
    seconds = time.perf_counter() - start
    rows = []
    for k, (train, test) in enumerate(splits):
        _, epochs_run = fit_summary(out["estimator"][k])
        rows.append({"fold": k + 1, "train_rows": len(train), "test_rows": len(test),
                     "rmse_px": float(-out["test_score"][k]),
                     "fit_seconds": round(float(out["fit_time"][k]), 3),
                     "score_seconds": round(float(out["score_time"][k]), 3),
                     "epochs_run": epochs_run})
    params = dict(configs.settings(template), shuffle=True,
                  dask=_dask_label(scheduler, dask_workers))
    result = CVResult(net=name, folds=folds, seed=random_state, epochs=_max_epochs(template),
                      n_rows=len(X), rows=rows, params=params, seconds=seconds)
    result.oof, result.fold_of, result.test_predictions = out_of_fold(
        out["estimator"], splits, X, X_test)
    result.oof_rmse_px = float(masked_rmse_px(y, result.oof))
    if keep_models:
        result.ensemble = FoldEnsemble.from_fitted(out["estimator"], folds=splits,
                                                   template=template, cv=folds,
                                                   random_state=random_state)
    return result


def out_of_fold(models, splits, X, X_test=None):
    """(oof (n, k) float32, fold of each row (n,) 1..len(splits), test predictions
    (folds, m, k) float32 or None): each row predicted by the model of the fold that held
    it out, and every fold model's predictions of ``X_test``. ValueError if a model
    predicts NaN or an infinite value (nothing to stack on)."""
    from ..utils.progress import bar
    X = np.asarray(X)
    oof, fold_of, test = None, np.zeros(len(X), np.int64), []
    with bar(total=len(splits), desc="out-of-fold predictions", unit="fold") as progress:
        for k, (model, (_, rows)) in enumerate(zip(models, splits), start=1):
            predicted = np.asarray(model.predict(X[rows]), dtype=np.float32)
            if oof is None:
                oof = np.full((len(X), predicted.shape[1]), np.nan, np.float32)
            oof[rows], fold_of[rows] = predicted, k
            if X_test is not None:
                test.append(np.asarray(model.predict(np.asarray(X_test)), dtype=np.float32))
            progress.update(1)
    if (fold_of == 0).any():
        raise ValueError(f"the folds leave {int((fold_of == 0).sum())} rows out")
    for what, values in (("out-of-fold", oof), ("test", np.asarray(test))):
        bad = ~np.isfinite(values)
        if bad.any():
            raise ValueError(f"a fold model predicted {int(bad.sum())} non-finite {what} "
                             "values: nothing to stack on; check its training")
    return oof, fold_of, (np.stack(test) if test else None)


def _dask_label(scheduler, dask_workers):
    if scheduler:
        return str(scheduler)
    if dask_workers:
        return f"local cluster, {dask_workers} workers"
    return None
