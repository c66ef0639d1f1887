"""Ensembles saved and used as one estimator: the mean of their members' predictions.

``FoldEnsemble``: the k models of a cross-validation. ``SeedEnsemble``: one model per seed,
each on all the rows, trained side by side in worker processes (one per CPU share), which
on a small CPU buys more epochs in the same minutes than one model on every core (a small
net's step does not use two cores fully). Both are ordinary scikit-learn regressors, so
``joblib.dump`` / ``joblib.load`` and ``make submit MODEL=...`` work exactly as for a
single model::

    ensemble = FoldEnsemble(configs.build("net1", verbose=0), cv=5).fit(X, y)
    ensemble = SeedEnsemble(configs.build("net8"), seeds=2, n_jobs=2, budget=2700).fit(X, y)
    keypoints = ensemble.predict(X_test)          # (n, 30) pixels

``selection.cross_validate_net(..., keep_models=True)`` builds a FoldEnsemble from the
models it has already fitted (no refit) with :meth:`FoldEnsemble.from_fitted`.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.model_selection import KFold, check_cv
from sklearn.utils.validation import check_is_fitted

from ..utils import runs
from ..net.nested import inner_net, net_prefix
from ..net.settings import head_params, set_head, settings
from ..net.metrics import PixelRMSEScore, check_images_and_targets
from ..net.nets import BNCNN


class _MeanEnsemble(PixelRMSEScore, RegressorMixin, BaseEstimator):
    """The mean of ``estimators_``'s pixel predictions."""

    def predict(self, X):
        """Mean over the member models of their predictions: (n, n_outputs) pixels."""
        check_is_fitted(self, "estimators_")
        total = None
        for estimator in self.estimators_:
            pred = np.asarray(estimator.predict(X), dtype=np.float64)
            total = pred if total is None else total + pred
        return (total / len(self.estimators_)).astype(np.float32)

    def predict_each(self, X):
        """Every member model's predictions, stacked: (n_models, n, n_outputs) pixels."""
        check_is_fitted(self, "estimators_")
        return np.stack([np.asarray(e.predict(X), dtype=np.float32) for e in self.estimators_])

    def member_names(self) -> list[str]:
        """A name for each of ``estimators_`` ("fold 1", "seed 3", ...)."""
        return [f"fold {k}" for k in range(1, len(self.estimators_) + 1)]

    def __sklearn_is_fitted__(self):
        return hasattr(self, "estimators_")


class FoldEnsemble(_MeanEnsemble):
    """Mean of the pixel predictions of one fitted clone of ``estimator`` per CV fold.

    Parameters
    ----------
    estimator : scikit-learn estimator (typically ``configs.build(...)``'s Pipeline)
        The template; ``fit`` trains a clone of it on the training part of every fold.
    cv : int, cross-validation splitter or iterable of (train, test) index arrays
        An int k means ``KFold(k, shuffle=True, random_state=random_state)``.
    random_state : int
        Seed of the default shuffled KFold (ignored when ``cv`` is a splitter or list).

    Attributes (after ``fit`` or ``from_fitted``)
    ----------
    estimators_ : list of fitted estimators, one per fold
    folds_ : list of (train, test) index arrays, or None when not known
    n_features_in_ : int

    ``score`` is the negative RMSE in pixels over labelled values (metrics.PixelRMSEScore).
    """

    def __init__(self, estimator=None, cv=5, random_state=0):
        self.estimator = estimator
        self.cv = cv
        self.random_state = random_state

    def _splitter(self):
        if isinstance(self.cv, int):
            return KFold(self.cv, shuffle=True, random_state=self.random_state)
        return check_cv(self.cv)

    def fit(self, X, y):
        """Fit a clone of ``estimator`` on the training rows of every fold. NaN targets
        pass through unchanged (the nets ignore them)."""
        if self.estimator is None:
            raise ValueError("FoldEnsemble needs an estimator to fit")
        X, y = check_images_and_targets(self, X, y)
        folds = [(np.asarray(train), np.asarray(test))
                 for train, test in self._splitter().split(X, y)]
        if not folds:
            raise ValueError("FoldEnsemble: the cross-validation gave no folds")
        self.estimators_ = [clone(self.estimator).fit(X[train], y[train])
                            for train, _ in folds]
        self.folds_ = folds
        return self

    @classmethod
    def from_fitted(cls, estimators, folds=None, template=None, cv=None, random_state=0):
        """An ensemble of already fitted estimators (e.g. a cross-validation's fold models)."""
        estimators = list(estimators)
        if not estimators:
            raise ValueError("FoldEnsemble.from_fitted needs at least one fitted estimator")
        ensemble = cls(estimator=template, cv=len(estimators) if cv is None else cv,
                       random_state=random_state)
        ensemble.estimators_ = estimators
        ensemble.folds_ = None if folds is None else [
            (np.asarray(train), np.asarray(test)) for train, test in folds]
        first = estimators[0]
        ensemble.n_features_in_ = getattr(first, "n_features_in_", None)
        return ensemble


class SeedEnsemble(_MeanEnsemble):
    """Mean of the pixel predictions of one clone of ``estimator`` per seed, each fitted on
    all the rows, ``n_jobs`` of them at a time in worker processes.

    Parameters
    ----------
    estimator : scikit-learn estimator with a KeypointNet inside (``configs.build(...)``)
        The template. Each member is a clone with the net's ``seed`` set to its own; all
        members hold out the same validation rows (the template's seed's split, through
        the net's ``split_seed``), so the ensemble's validation score is a fair one.
    seeds : int or list of int
        The members' seeds; an int n means the template's seed and the n - 1 after it.
    heads : None or list of str
        None: every member is the template. A list of BNCNN heads ("dense",
        "softargmax"): member k gets ``heads[k % len(heads)]`` with that head's layers
        (``BNCNN.HEAD_LAYERS``). Nets with different heads err differently, so their mean
        gains more than a mean of seeds alone (docs/RESULTS.md).
    n_jobs : int or None
        Members fitted at a time, each in its own worker process with its share of the
        CPU threads (joblib's ``n_jobs``: None is 1, -1 all cores). With 1 they are fitted
        one after the other in this process.
    budget : float or None
        Seconds for the whole ensemble, counted from the call to ``fit``, or None for
        none: members run in ceil(len(seeds) / n_jobs) rounds, round r of R ends at
        budget x r / R, and each member's net gets the seconds left until its round's end
        when it starts (so starting the worker processes counts too). The template's net
        has no budget of its own: the ensemble shares this one out.

    ``fit(X, y, run_dir=...)`` keeps each member's checkpoints in ``run_dir/seed-S/`` while
    it trains (runs.py, as ``make train`` does for one net): the same call after the process
    died resumes every member where its checkpoint left it, a member that had finished
    included, and ends with the model the uninterrupted fit gives (on the CPU in fp32).

    Attributes (after ``fit``)
    ----------
    estimators_ : list of fitted estimators, one per seed
    seeds_ : list of int
    plan_ : dict, what ``plan()`` said when the fit began (what it followed)
    n_features_in_ : int

    ``score`` is the negative RMSE in pixels over labelled values (metrics.PixelRMSEScore).
    """

    heads = None   # for models saved before heads= existed
    budget = None  # for models saved before budget= existed (their template held it)

    def __init__(self, estimator=None, seeds=2, n_jobs=None, heads=None, budget=None):
        self.estimator = estimator
        self.seeds = seeds
        self.n_jobs = n_jobs
        self.heads = heads
        self.budget = budget

    def _heads(self, n) -> list | None:
        if self.heads is None:
            return None
        heads = [self.heads] if isinstance(self.heads, str) else list(self.heads)
        if not heads:
            raise ValueError(f"SeedEnsemble heads must be among {', '.join(BNCNN.HEADS)}, "
                             f"got {self.heads!r}")
        for head in heads:   # checked now, not after the first member's hours
            head_params(self.estimator, head)
        return [heads[k % len(heads)] for k in range(n)]

    def _seeds(self) -> list[int]:
        if isinstance(self.seeds, (int, np.integer)):
            if self.seeds < 1:
                raise ValueError(f"SeedEnsemble needs at least one seed, got seeds={self.seeds}")
            first = inner_net(self.estimator).seed
            return [first + k for k in range(int(self.seeds))]
        seeds = [int(s) for s in self.seeds]
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"SeedEnsemble needs distinct seeds, got {self.seeds!r}")
        return seeds

    def plan(self) -> dict:
        """What ``fit`` will do: seeds, jobs at a time, threads per job, rounds, and each
        member's budget in seconds (None without one)."""
        if self.estimator is None:
            raise ValueError("SeedEnsemble needs an estimator to fit")
        seeds = self._seeds()
        jobs = max(1, min(effective_n_jobs(self.n_jobs), len(seeds)))
        rounds = math.ceil(len(seeds) / jobs)
        if inner_net(self.estimator).budget is not None:   # it would be each member's, whole
            raise ValueError("SeedEnsemble: give the time budget to the ensemble (budget=), "
                             "not to its template's net")
        budget = self.budget
        if budget is not None and not budget > 0:
            raise ValueError(f"SeedEnsemble budget must be a positive number of seconds, "
                             f"got {budget!r}")
        return {"seeds": seeds, "heads": self._heads(len(seeds)), "jobs": jobs, "rounds": rounds,
                "threads_per_job": max(1, torch.get_num_threads() // jobs) if jobs > 1
                else torch.get_num_threads(),
                "member_budget_s": None if budget is None else float(budget) / rounds}

    def fit(self, X, y, run_dir=None):
        """Fit one clone of ``estimator`` per seed on all of (X, y). ``run_dir``: a folder
        for the members' checkpoints, resumed from when it holds this fit's (see above)."""
        started = time.time()      # wall-clock time: the workers' clocks are compared to it
        plan = self.plan()
        X, y = check_images_and_targets(self, X, y)
        prefix = net_prefix(self.estimator)
        template = inner_net(self.estimator)
        split_seed = template.seed if template.split_seed is None else template.split_seed
        members = [clone(self.estimator).set_params(**{prefix + "seed": seed,
                                                       prefix + "split_seed": split_seed})
                   for seed in plan["seeds"]]
        for member, head in zip(members, plan["heads"] or ()):
            set_head(member, head)
        own_callbacks = None
        if run_dir is not None:
            own_callbacks = _keep_member_runs(self.estimator, members, plan, run_dir, X, y,
                                              self.budget)
        jobs, share = plan["jobs"], plan["member_budget_s"]
        ends = [None if share is None else started + share * (k // jobs + 1)
                for k in range(len(members))]
        if jobs == 1:
            fitted = [_fit_in_turn(member, X, y, prefix, end) for member, end in zip(members, ends)]
        else:
            # loky processes: each member's torch uses only its share of the threads, and
            # its epoch table comes out line by line, labelled with its seed
            fitted = Parallel(n_jobs=jobs, backend="loky")(
                delayed(_fit_member)(member, X, y, prefix, end, plan["threads_per_job"], name)
                for member, name, end in zip(members, self._names(plan), ends))
        if own_callbacks is not None:   # the saved members carry their own callbacks, not this run's
            for member, callbacks in zip(fitted, own_callbacks):
                member.set_params(**{prefix + "callbacks": callbacks})
        self.estimators_ = list(fitted)
        self.seeds_ = plan["seeds"]
        self.plan_ = plan
        return self

    @staticmethod
    def _names(plan) -> list[str]:
        heads = plan.get("heads") or [None] * len(plan["seeds"])
        return [f"seed {seed}" + (f", {head}" if head else "")
                for seed, head in zip(plan["seeds"], heads)]

    def member_names(self) -> list[str]:
        plan = getattr(self, "plan_", None) or {"seeds": self.seeds_}
        return self._names(plan)


def _keep_member_runs(template, members, plan, run_dir, X, y, budget) -> list:
    """Give each member checkpoint callbacks in ``run_dir/seed-S/`` (runs.py); returns
    the members' own callbacks. ``run_dir`` records the ensemble, its template and a hash
    of the data; a folder of another fit is set aside, never resumed (runs.prepare)."""
    prefix = net_prefix(template)
    record = {"ensemble": {"seeds": plan["seeds"], "heads": plan["heads"]},
              # the budget under settings' name, as when the template held it
              "settings": dict(settings(template), budget_s=budget), "data": _data_hash(X, y)}
    runs.prepare(run_dir, record)
    own = []
    for member, seed, head in zip(members, plan["seeds"], plan["heads"] or [None] * len(members)):
        net = inner_net(member)
        member_dir = Path(run_dir) / f"seed-{seed}"
        epoch = runs.prepare(member_dir, {"seed": seed, "head": head,
                                          "settings": dict(settings(member), budget_s=budget)})
        if epoch:
            print(f"seed {seed}: resuming from epoch {epoch} (checkpoint in {member_dir})",
                  flush=True)
        first, last = runs.checkpoint_callbacks(member_dir)
        own.append(list(net.callbacks))
        member.set_params(**{prefix + "callbacks": first + list(net.callbacks) + last})
    return own


def _data_hash(X, y) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for array in (X, y):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


class _Labelled:
    """A text stream that writes each line to ``stream`` after ``label``, at once."""

    def __init__(self, label, stream):
        self.label, self.stream, self.pending = label, stream, ""

    def write(self, text):
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.stream.write(f"[{self.label}] {line}\n")
        self.stream.flush()
        return len(text)

    def flush(self):
        self.stream.flush()

    def isatty(self):
        return False            # plain text: no colour codes between the labels


def _fit_in_turn(member, X, y, prefix, end):
    """One member in this process. skorch ends a fit quietly on Ctrl-C; here Ctrl-C ends
    the ensemble's fit, rather than the next member starting."""
    with runs.stop_on_ctrl_c() as interrupted:
        fitted = _fit_member(member, X, y, prefix, end)
    if interrupted:
        raise KeyboardInterrupt
    return fitted


def _fit_member(member, X, y, prefix, end=None, threads=None, label=None):
    """One SeedEnsemble member: its budget the seconds left until ``end`` (wall clock);
    in a worker process, ``threads`` threads and its output labelled."""
    if end is not None:
        # at least a moment: a budget below one epoch runs one epoch
        member.set_params(**{prefix + "budget": max(end - time.time(), 1e-3)})
    if threads is None:
        return member.fit(X, y)
    torch.set_num_threads(threads)
    with contextlib.redirect_stdout(_Labelled(label, sys.stdout)):
        return member.fit(X, y)
