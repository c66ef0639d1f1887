"""The time budget and the mirror axis are skorch callbacks of every KeypointNet (net/budget.py,
net/mirror_axis.py): where they run among the others, how a budget ends a fit, and nets saved
before they were callbacks."""
from pathlib import Path

import numpy as np
import pytest
from skorch import NeuralNetRegressor
from sklearn.base import clone

from kfkd_kit import configs
from kfkd_kit.net import budget as budget_module
from kfkd_kit.net.budget import TimeBudget, epoch_bound
from kfkd_kit.net.estimator import KeypointNet
from kfkd_kit.net.mirror_axis import MirrorAxis
from kfkd_kit.utils import runs

OLD = Path(__file__).parents[1] / "fixtures" / "old_models"


class Clock:
    """perf_counter for the time budget: one second later at every reading."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 1.0
        return self.now


def _names(net):
    return [name for name, _ in net.callbacks_]


def test_the_net_is_skorchs_own_loop_with_callbacks():
    # no notify of its own, and the budget and the mirror axis among its default callbacks
    assert KeypointNet.notify is NeuralNetRegressor.notify
    defaults = dict(KeypointNet(object).get_default_callbacks())
    assert isinstance(defaults["time_budget"], TimeBudget)
    assert isinstance(defaults["mirror_axis"], MirrorAxis)


def test_the_budget_runs_first_and_the_mirror_axis_after_the_users_callbacks(tmp_path):
    model = configs.build("net8", epochs=2, device="cpu", verbose=0)
    first, last = runs.checkpoint_callbacks(tmp_path / "run")
    net = model.named_steps["net"]
    net.set_params(callbacks=first + list(net.callbacks) + last)
    names = _names(net.initialize())
    # the budget before the checkpoint (which keeps its plan), the mirror axis after the
    # weight average (it is refined from the averaged weights), the table last
    assert names[0] == "time_budget" and names[-2:] == ["mirror_axis", "print_log"]
    assert names.index("weight_average") < names.index("mirror_axis")
    assert names.index("checkpoint") < names.index("mirror_axis")


def test_the_budgets_lines_come_below_their_epochs_row_and_the_last_epoch_is_whole(
        monkeypatch, tiny_xy, capsys):
    monkeypatch.setattr(budget_module, "time", Clock())
    X, y = tiny_xy
    # one fake second an epoch: 8 s less the 2 s margin hold 6 epochs
    net = configs.build("net1", epochs=100, budget=8, device="cpu").fit(X, y).named_steps["net"]
    assert net.planned_epochs_ == 6 == len(net.history)
    assert all("train_loss" in row and "valid_loss" in row for row in net.history)
    lines = capsys.readouterr().out.splitlines()
    said = next(i for i, line in enumerate(lines) if line.startswith("budget 8 s: epoch 1 took"))
    rows = [i for i, line in enumerate(lines) if line.split()[:1] in (["1"], ["2"])]
    assert rows[0] < said < rows[1]
    assert sum(line.split()[:1] == ["6"] for line in lines) == 1   # the last row was printed


def test_the_loop_bound_of_a_budget_holds_every_plan():
    tick = budget_module.get_clock_info("perf_counter").resolution
    assert epoch_bound(600) >= 600 / tick > 10 ** 6
    with pytest.raises(ValueError, match="budget must be a positive number"):
        epoch_bound(0)


def test_drawing_batches_measures_nothing(tiny_xy):
    X, y = tiny_xy
    net = configs.build("net1", epochs=1, device="cpu", verbose=0).named_steps["net"]
    net.initialize()
    iterator = net.get_iterator(net.get_dataset(X, y), training=True)
    assert iterator.flip_axis is None and not hasattr(net, "flip_axis_")
    net.flip_axis_ = 48.25     # what MirrorAxis measured when training began
    assert net.get_iterator(net.get_dataset(X, y), training=True).flip_axis == 48.25


def test_a_refit_forgets_what_the_callbacks_measured_and_planned(monkeypatch, tiny_xy):
    X, y = tiny_xy
    monkeypatch.setattr(budget_module, "time", Clock())
    model = configs.build("net1", epochs=100, budget=6, device="cpu", verbose=0).fit(X, y)
    net = model.named_steps["net"]
    assert net.budget_plan_["epochs"] == 4 and net.flip_axis_images_ is not None
    net.set_params(budget=None, max_epochs=2, flip_axis=48.25)
    net.fit(X, y)
    assert not hasattr(net, "budget_plan_") and net.planned_epochs_ == 2 == len(net.history)
    assert net.flip_axis_ == net.flip_axis_images_ == 48.25


def test_an_old_net_gets_the_callbacks_and_trains_on_as_a_new_one(tiny_xy, monkeypatch):
    from kfkd_kit.utils.modelfile import load_model
    model = load_model(OLD / "net8.joblib")
    net = model.named_steps["net"]
    names = _names(net)
    assert names[0] == "time_budget" and names[-2:] == ["mirror_axis", "print_log"]
    # carried on (partial_fit): its epochs planned, and the mirror axis refined again
    X, y = tiny_xy
    before = net.flip_axis_fit_rmse_px_
    net.set_params(max_epochs=1)
    net.partial_fit(model[:-1].transform(X), y)
    assert net.planned_epochs_ == 1 and len(net.history) == 3
    assert net.flip_axis_fit_rmse_px_ != before
    # fitted again from scratch, with a budget: the very model a new net makes
    net.set_params(max_epochs=50, budget=5)
    monkeypatch.setattr(budget_module, "time", Clock())
    again = model.fit(X, y)
    monkeypatch.setattr(budget_module, "time", Clock())
    fresh = clone(model).fit(X, y)
    assert len(net.history) == 3 == net.budget_plan_["epochs"]
    np.testing.assert_array_equal(again.predict(X), fresh.predict(X))
