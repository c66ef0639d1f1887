"""The search space of `kfkd tune` (search/study.py): each dimension a KeypointNet parameter,
its range, and the command-line settings that hold it fixed. The table of dimensions, and
why the peak lr stops at 0.01, is in search/study.py's docstring."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..net.nested import inner_net

__all__ = ["Dim", "SPACE", "search_space", "net_params", "starting_point", "EPOCHS"]

EPOCHS = "epochs"


@dataclass(frozen=True)
class Dim:
    """One dimension of the search: Optuna's name for it, the KeypointNet parameter(s)
    it sets, its range, and the settings (configs.OVERRIDES names) that hold it fixed."""
    name: str
    key: str
    low: float
    high: float
    integer: bool = False
    step: float | None = None
    log: bool = False
    also: tuple = ()
    held_by: tuple = ()

    def suggest(self, trial):
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def describe(self) -> str:
        text = f"{self.low:g}-{self.high:g}"
        return text + (f" step {self.step:g}" if self.step else "") + (" log" if self.log else "")


SPACE = (
    Dim("width", "module__width", 8, 32, integer=True, step=4),
    Dim("dropout", "module__dropout", 0.0, 0.4),
    Dim("rotate", "iterator_train__rotate", 0.0, 20.0),
    Dim("scale", "iterator_train__scale", 0.0, 0.15),
    Dim("shift", "iterator_train__shift", 0.0, 6.0),
    Dim("weight_decay", "optimizer__weight_decay", 1e-3, 0.3, log=True),
    Dim("lr", "lr", 1e-3, 1e-2, log=True, also=("callbacks__lr_schedule__max_lr",), held_by=("lr",)),
    Dim(EPOCHS, "max_epochs", 40, 120, integer=True, step=20, held_by=("epochs", "budget")),
)


def search_space(fixed=()) -> tuple[Dim, ...]:
    """SPACE less the dimensions that the given settings (``fixed``: "epochs", "lr",
    "budget") hold."""
    fixed = set(fixed)
    return tuple(dim for dim in SPACE if not fixed & set(dim.held_by))


def net_params(values: dict, space=SPACE) -> dict:
    """Optuna's values by name -> the KeypointNet parameters they set (what --params takes)."""
    params = {}
    for dim in space:
        if dim.name in values:
            for key in (dim.key,) + dim.also:
                params[key] = values[dim.name]
    return params


def starting_point(template, space) -> dict:
    """{dimension: the template net's own value} for trial 0, for each dimension of
    ``space`` whose value lies in its range (and on its step); the rest are drawn."""
    params = inner_net(template).get_params()
    start = {}
    for dim in space:
        value = params.get(dim.key)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            continue
        steps = (value - dim.low) / dim.step if dim.step else 0.0
        if (dim.low <= value <= dim.high and abs(steps - round(steps)) < 1e-9
                and (not dim.integer or float(value).is_integer())):
            start[dim.name] = int(value) if dim.integer else float(value)
    return start
