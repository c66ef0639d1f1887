"""The budget picks the recipe (recipes.py), and `kfkd train` builds what it picked in one
pass: the estimator is checked here without training it."""
import pytest

from kfkd_kit import configs, recipes
from kfkd_kit.cli import main
from kfkd_kit.meta.ensemble import SeedEnsemble
from kfkd_kit.net.nested import inner_net

BF16 = recipes.Machine("cpu", 2, True)


@pytest.mark.parametrize("net, budget, machine, name", [
    ("net8", 2700, BF16, "three nets"),
    ("net8", 3600, recipes.Machine("cpu", 16, True), "three nets"),
    ("net8", 2699, BF16, "pair"),
    ("net8", 600, BF16, "pair"),
    ("net8", 599, BF16, "one net"),                                # not measured: one net
    ("net8", None, BF16, "one net"),
    ("net8", 2700, recipes.Machine("cpu", 2, False), "one net"),   # fp32: the pair only tied
    ("net8", 2700, recipes.Machine("cpu", 1, True), "one net"),
    ("net8", 2700, recipes.Machine("cuda", 2, True), "one net"),
    ("net5", 2700, BF16, "one net"),
])
def test_the_budget_and_the_machine_pick_the_recipe(net, budget, machine, name):
    assert recipes.choose(net, budget, machine).name == name


def test_the_recipes_are_the_measured_ones():
    three, pair = recipes.RECIPES
    assert (three.from_s, three.models, three.heads, three.jobs, three.valid_fraction) == (
        2700, 3, ("dense", "softargmax", "dense"), 3, 0.0)
    assert (pair.from_s, pair.models, pair.heads, pair.jobs, pair.valid_fraction) == (
        600, 2, ("dense", "softargmax"), None, None)
    assert all(r.measured for r in recipes.RECIPES)


def test_what_is_given_overrides_the_recipe():
    plan = recipes.plan("net8", 2700, BF16)
    assert (plan.models, plan.heads, plan.jobs, plan.valid_fraction) == (
        3, ("dense", "softargmax", "dense"), 3, 0.0)
    assert plan.why.startswith("recipe three nets: a budget of 45 minutes on 2 cores with "
                               "native bf16: 3 net8 nets side by side")
    # --valid-fraction and --jobs replace only themselves, and the line says so
    plan = recipes.plan("net8", 2700, BF16, valid_fraction=0.1, jobs=2)
    assert (plan.models, plan.jobs, plan.valid_fraction) == (3, 2, 0.1)
    assert "valid fraction 0.1" in plan.why
    # --models or --heads replace the recipe's nets
    assert recipes.plan("net8", 2700, BF16, models=1).record()["models"] == 1
    plan = recipes.plan("net8", 2700, BF16, heads=["softargmax"])
    assert (plan.recipe.name, plan.models, plan.heads, plan.valid_fraction) == (
        "one net", 1, ("softargmax",), None)
    plan = recipes.plan("net8", 2700, BF16, models=2)
    assert (plan.models, plan.heads, plan.jobs) == (2, None, -1)


@pytest.mark.parametrize("precision, support, native", [
    ("auto", "AMX", True), ("bf16", "AVX512-BF16", True), ("fp32", "AMX", False),
    ("auto", None, False)])
def test_the_machine_is_read_with_the_precision_asked_for(precision, support, native,
                                                          monkeypatch):
    from kfkd_kit.utils import precision as module
    monkeypatch.setattr(module, "bf16_support", lambda device: support)
    monkeypatch.setattr("joblib.cpu_count", lambda: 4)
    assert recipes.Machine.this_one("cpu", precision) == recipes.Machine("cpu", 4, native)


def _built(argv, monkeypatch, capsys, tmp_path, bf16="AMX", cores=2):
    """What `kfkd train ARGV` would fit, and the recipe it would record, without fitting."""
    from kfkd_kit.commands import train
    from kfkd_kit.utils import precision
    monkeypatch.setattr(precision, "bf16_support", lambda device: bf16)
    monkeypatch.setattr("joblib.cpu_count", lambda: cores)
    seen = {}

    def fake_train(estimator, recipe=None, **kwargs):
        seen.update(estimator=estimator, recipe=recipe)
        return {"metrics": {"interrupted": False}}

    monkeypatch.setattr(train, "train", fake_train)
    assert main(["train", "--device", "cpu", "--data", str(tmp_path), *argv]) == 0
    return seen["estimator"], seen["recipe"], capsys.readouterr().out


def test_train_net8_with_45_minutes_alone_builds_three_nets(monkeypatch, capsys, tmp_path):
    estimator, recipe, out = _built(["--net", "net8", "--budget", "45m"], monkeypatch, capsys,
                                    tmp_path)
    assert isinstance(estimator, SeedEnsemble)
    assert (estimator.seeds, estimator.n_jobs, estimator.heads, estimator.budget) == (
        3, 3, ["dense", "softargmax", "dense"], 2700)
    template = inner_net(estimator.estimator)
    assert template.valid_fraction == 0.0 and template.budget is None   # the budget flows down
    assert recipe["name"] == "three nets" and out.startswith("recipe three nets: ")


def test_train_overrides_win_over_the_recipe(monkeypatch, capsys, tmp_path):
    estimator, recipe, _ = _built(["--net", "net8", "--budget", "45m", "--valid-fraction",
                                   "0.1", "--jobs", "1"], monkeypatch, capsys, tmp_path)
    assert estimator.n_jobs == 1 and inner_net(estimator.estimator).valid_fraction == 0.1
    estimator, recipe, out = _built(["--net", "net8", "--budget", "45m", "--models", "1"],
                                    monkeypatch, capsys, tmp_path)
    assert not isinstance(estimator, SeedEnsemble) and inner_net(estimator).budget == 2700
    assert inner_net(estimator).valid_fraction == 0.1          # net8's own split
    estimator, recipe, _ = _built(["--net", "net8", "--budget", "45m", "--heads", "softargmax"],
                                  monkeypatch, capsys, tmp_path)
    assert inner_net(estimator).module__head == "softargmax"
    # fp32: one net, with the whole budget
    estimator, recipe, out = _built(["--net", "net8", "--budget", "45m"], monkeypatch, capsys,
                                    tmp_path, bf16=None)
    assert not isinstance(estimator, SeedEnsemble) and recipe["name"] == "one net"
    assert "in fp32: one net8 net" in out


def test_build_is_one_pass_with_the_final_parameters():
    built = configs.build("net8", params={"module__width": 24,
                                          "callbacks__early_stopping__patience": 7},
                          head="softargmax", epochs=3, lr=0.002, device="cpu")
    net = inner_net(built)
    callbacks = dict(net.callbacks)
    assert (net.module__width, net.module__head, net.max_epochs, net.lr) == (
        24, "softargmax", 3, 0.002)
    assert callbacks["lr_schedule"].max_lr == 0.002 and callbacks["early_stopping"].patience == 7
    # nothing reached back: no set_params leftovers beside the callbacks themselves
    assert not any(key.startswith("callbacks__") for key in net.get_params(deep=False))
    # a setting given wins over the file; the specialists' early stopping is under both
    assert inner_net(configs.build("net8", params={"lr": 0.1}, lr=0.2)).lr == 0.2
    specialists = configs.build("specialists", epochs=2)
    assert dict(inner_net(specialists).callbacks)["early_stopping"].patience == configs.SPECIALIST_PATIENCE
    assert inner_net(specialists).max_epochs == 2


@pytest.mark.parametrize("params, message", [
    ({"module__wdth": 3}, "p.json: unknown parameter"),
    ({"callbacks__nope__x": 3}, "p.json: unknown parameter"),
    ({"callbacks__early_stopping__nope": 3}, "p.json: unknown parameter"),
    ({"lrr": 3}, "p.json: unknown parameter"),
])
def test_build_refuses_unknown_parameters_naming_their_source(params, message):
    with pytest.raises(ValueError, match=message):
        configs.build("net8", params=params, source="p.json")


def test_a_head_needs_net8():
    with pytest.raises(ValueError, match="needs a BNCNN net"):
        configs.build("net2", head="softargmax")
