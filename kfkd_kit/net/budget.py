"""A time budget for a fit (``KeypointNet(budget=seconds)``, BUDGET= / --budget), as a skorch
callback: it times the first epochs, fixes how many epochs the fit runs so that it ends within
the budget, spreads the schedules (one-cycle, linear) over exactly those, follows the pace of
the epochs after, and ends the fit when its plan is done or the time left would not hold
another epoch.

What it chose stays on the net: ``planned_epochs_`` (also a column of the history, and what
the schedules read through ``callbacks.planned_epochs``) and ``budget_plan_`` (what was
measured and chosen; a run's checkpoints keep it, runs.py). Without a budget the plan is
``max_epochs``.
"""
from __future__ import annotations

import math
import time
from time import get_clock_info   # not through ``time``: tests replace its perf_counter

import numpy as np
from skorch.callbacks import Callback


def check_budget(budget) -> float:
    """The budget in seconds, or a ValueError saying what was expected."""
    try:
        seconds = float(budget)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0:
        raise ValueError(f"budget must be a positive number of seconds, got {budget!r}")
    return seconds


def epoch_bound(budget) -> int:
    """The most epochs any plan for ``budget`` seconds can hold, the loop's bound for a
    budgeted fit (skorch's fit_loop takes a count before the first epoch is timed).

    Every plan is the epochs done plus the time left divided by an epoch's measured time,
    and an epoch lasts at least one tick of the clock that times it, so no plan exceeds
    budget / tick; ``TimeBudget`` ends the fit at its plan, long before this."""
    return math.ceil(check_budget(budget) / get_clock_info("perf_counter").resolution)


class TimeBudget(Callback):
    """Plans the epochs of a fit with ``net.budget`` seconds (a ``KeypointNet`` default
    callback, run before every other one so that an epoch's checkpoint holds the plan).

    After the first two epochs it plans from their measured time; after each later one it
    re-plans when the pace has changed (fewer epochs as soon as the plan would overrun, more
    once at least max(2, 3%) more fit). A resumed run keeps its plan. What follows the last
    epoch (the weight average, the caller's saving) gets a margin of max(2 s, 3%). Its
    lines are printed below the epoch's row of the table.
    """

    # the net's attributes set here: a new fit (KeypointNet.initialize) starts without them
    fitted_attributes = ("planned_epochs_", "budget_plan_")

    def initialize(self):
        self.started_, self.epoch_ends_, self.lines_ = None, [], []
        return self

    def on_train_begin(self, net, **kwargs):
        # max_epochs, unless a budget plans otherwise; Resume, after this, puts back a
        # resumed run's plan
        net.planned_epochs_ = net.max_epochs
        self.started_, self.epoch_ends_, self.lines_ = None, [], []
        if net.budget is not None:
            check_budget(net.budget)
            self.started_ = time.perf_counter()   # the budget counts from here

    def on_epoch_begin(self, net, **kwargs):
        self._print(net)

    def on_epoch_end(self, net, **kwargs):
        if net.budget is not None and self._plan_done(net):
            net.end_fit_after_this_epoch()

    def on_train_end(self, net, **kwargs):
        self._print(net)
        self.started_, self.epoch_ends_ = None, []

    def _plan_done(self, net) -> bool:
        """After an epoch: plan (after the first two epochs, from their measured time),
        record the plan, and say whether the fit ends here: its plan is done, or the time
        left would not hold another epoch."""
        done = len(net.history)
        resumed = getattr(net, "resumed_epochs_", 0)
        now = time.perf_counter()
        elapsed = now - self.started_
        budget = float(net.budget)
        # an epoch's wall time, from the end of the one before (callbacks and all; the first
        # from the fit's start, so what came before it is counted in too)
        epoch_s = now - (self.epoch_ends_[-1] if self.epoch_ends_ else self.started_)
        self.epoch_ends_.append(now)
        margin = max(2.0, 0.03 * budget)
        if not resumed and done <= 2:
            epochs = done + max(int((budget - margin - elapsed) // epoch_s), 0)
            self._plan(net, max(epochs, done), epoch_s, elapsed)
        elif not resumed:
            self._follow_pace(net, done, elapsed, budget - margin)
        net.history.record("planned_epochs", net.planned_epochs_)
        if done >= net.planned_epochs_:
            return True
        if elapsed + epoch_s > budget - margin / 2:
            # a new dict: a checkpoint being written may hold the old one
            net.budget_plan_ = dict(getattr(net, "budget_plan_", None) or {},
                                    stopped_early=done)
            self.lines_.append(
                f"budget: stopping after epoch {done} of {net.planned_epochs_}: "
                f"{elapsed:.0f} s of {budget:.0f} s spent and an epoch now takes "
                f"{epoch_s:.1f} s (slower than when it was planned)")
            return True
        return False

    def _plan(self, net, epochs, epoch_s, elapsed):
        first = len(net.history) == 1
        changed = epochs != net.planned_epochs_
        net.planned_epochs_ = epochs
        net.budget_plan_ = {"budget_s": float(net.budget), "epochs": int(epochs),
                            "seconds_per_epoch": round(epoch_s, 3),
                            "timed_epochs": len(net.history)}
        if changed:
            replan_schedules(net)
        if first or changed:
            self.lines_.append(
                f"budget {float(net.budget):.0f} s: epoch {len(net.history)} took "
                f"{epoch_s:.1f} s ({elapsed:.0f} s so far), so {epochs} epochs in all; the "
                "schedules run over exactly those")

    def _follow_pace(self, net, done, elapsed, usable):
        """Re-plan when the pace of the epochs has changed since the plan (a busier or a
        quieter machine): fewer epochs as soon as the plan would overrun, more once at least
        max(2, 3%) more fit, so that the schedules still run to their end (the one-cycle's lr
        anneals) within the budget. The pace is the median of the last three epochs after
        the first (which carries the warm-up), so one slow epoch costs its own seconds and
        no more."""
        recent = float(np.median(np.diff(self.epoch_ends_[-4:])))   # epochs 2.. end to end
        fits = max(done + int((usable - elapsed) // recent), done)
        was = net.planned_epochs_
        if not (fits < was or fits - was >= max(2, 0.03 * was)):
            return
        net.planned_epochs_ = fits
        # a new dict: a checkpoint being written may hold the old one
        plan = dict(net.budget_plan_)
        plan["epochs"] = int(fits)
        plan["replanned"] = [*plan.get("replanned", []), [done, int(fits), round(recent, 3)]]
        net.budget_plan_ = plan
        replan_schedules(net)
        self.lines_.append(
            f"budget: epochs now take {recent:.1f} s (planned at "
            f"{plan['seconds_per_epoch']:.1f} s), so {fits} epochs in all instead of "
            f"{was}; the schedules end with them")

    def _print(self, net):
        # held from the epoch's end until every callback has seen it: below its table row
        lines, self.lines_ = self.lines_, []
        if net.verbose:
            for line in lines:
                print(line, flush=True)


def replan_schedules(net):
    """Spread the schedules (the callbacks with ``replan``) over ``net.planned_epochs_``."""
    for _, callback in net.callbacks_:
        if hasattr(callback, "replan"):
            callback.replan(net)

