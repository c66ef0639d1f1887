"""SeedEnsemble: one net per seed on all the rows, trained side by side in worker
processes, saved and used as one model (``make train ENSEMBLE=N``)."""
import json

import numpy as np
import pytest
import torch
from sklearn.base import clone

from kfkd_kit import configs
from kfkd_kit.utils import modelfile
from kfkd_kit.cli import main
from kfkd_kit.meta.ensemble import SeedEnsemble
from kfkd_kit.net.nested import nets
from kfkd_kit.net.nets import BNCNN
from kfkd_kit.data import write_kaggle_dataset


def _net1(**settings):
    return configs.build("net1", verbose=0, device="cpu", precision="fp32",
                         **{"epochs": 3, "valid_fraction": 0.25, **settings})


def test_members_differ_only_in_seed_and_share_one_validation_split(tiny_xy):
    X, y = tiny_xy
    ensemble = SeedEnsemble(_net1(seed=3), seeds=2, n_jobs=1).fit(X, y)
    assert ensemble.seeds_ == [3, 4] and list(nets(ensemble)) == ["seed 3", "seed 4"]
    each = ensemble.predict_each(X)
    assert not np.allclose(each[0], each[1])                   # two different nets
    np.testing.assert_allclose(ensemble.predict(X), each.mean(axis=0), rtol=1e-6)
    # member 4 is exactly net1 with seed 4 that holds out seed 3's validation rows
    alone = _net1(seed=4).set_params(net__split_seed=3).fit(X, y)
    np.testing.assert_array_equal(each[1], alone.predict(X))
    template_rows = configs.inner_net(_net1(seed=3)).validation_rows(X, y)
    for member in ensemble.estimators_:
        net = configs.inner_net(member)
        np.testing.assert_array_equal(net.validation_rows(X, y), template_rows)
    assert not np.array_equal(configs.inner_net(_net1(seed=4)).validation_rows(X, y),
                              template_rows)             # without split_seed they would differ


def test_members_in_worker_processes_are_the_nets_fitted_here(tiny_xy):
    X, y = tiny_xy
    parallel = SeedEnsemble(_net1(), seeds=[0, 7], n_jobs=2)
    assert parallel.plan()["jobs"] == 2 and parallel.plan()["threads_per_job"] >= 1
    parallel.fit(X, y)
    threads = torch.get_num_threads()
    torch.set_num_threads(parallel.plan()["threads_per_job"])   # what each worker used
    try:
        here = SeedEnsemble(_net1(), seeds=[0, 7], n_jobs=1).fit(X, y)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(parallel.predict_each(X), here.predict_each(X))


def test_a_budget_is_for_the_whole_ensemble(tiny_xy):
    X, y = tiny_xy
    # three members one at a time: three rounds, a third of the budget each (a budget below
    # one epoch runs one epoch, so this is quick)
    ensemble = SeedEnsemble(_net1(), seeds=3, n_jobs=1, budget=0.3)
    assert ensemble.plan()["rounds"] == 3
    assert ensemble.plan()["member_budget_s"] == pytest.approx(0.1)
    ensemble.fit(X, y)
    for k, net in enumerate(nets(ensemble).values()):
        # what was left of the budget until the end of the member's round, when it started
        assert 0 < net.budget <= 0.1 * (k + 1)
        assert net.budget_plan_["budget_s"] == net.budget
    assert configs.inner_net(ensemble.estimator).budget is None     # the template untouched
    # side by side, every member has the whole budget
    assert SeedEnsemble(_net1(), seeds=2, n_jobs=2, budget=60).plan()["member_budget_s"] == 60
    assert SeedEnsemble(_net1(), seeds=3, n_jobs=2, budget=60).plan()["member_budget_s"] == 30
    assert SeedEnsemble(_net1(), seeds=2, n_jobs=2).plan()["member_budget_s"] is None


def test_a_budget_on_the_template_is_refused():
    # each member would take it whole: the budget is given to the ensemble, which shares it
    with pytest.raises(ValueError, match="give the time budget to the ensemble"):
        SeedEnsemble(_net1(budget=60), seeds=2, n_jobs=2).plan()
    with pytest.raises(ValueError, match="positive number of seconds"):
        SeedEnsemble(_net1(), seeds=2, budget=0).plan()


def test_an_ensemble_saved_before_budget_existed_keeps_its_class_default(tiny_xy):
    X, y = tiny_xy
    ensemble = SeedEnsemble(_net1(epochs=1), seeds=2, n_jobs=1).fit(X, y)
    del ensemble.budget                       # as unpickled from a model saved before
    assert ensemble.budget is None and clone(ensemble).budget is None
    assert ensemble.predict(X[:2]).shape == (2, 30)


@pytest.mark.parametrize("seeds", [0, [], [1, 1]])
def test_bad_seeds_are_refused(seeds):
    with pytest.raises(ValueError, match="seed"):
        SeedEnsemble(_net1(), seeds=seeds).plan()


def test_clone_keeps_the_parameters():
    ensemble = SeedEnsemble(_net1(seed=5), seeds=[5, 9], n_jobs=2)
    copy = clone(ensemble)
    assert copy.seeds == [5, 9] and copy.n_jobs == 2
    assert configs.inner_net(copy.estimator).seed == 5


@pytest.mark.slow
def test_train_models_saves_one_ensemble_that_submit_uses(tmp_path, capfd):
    from joblib.externals.loky import get_reusable_executor
    # workers that an earlier test started would write to that test's captured output
    get_reusable_executor().shutdown(wait=True)
    data, model = tmp_path / "data", tmp_path / "models" / "net1.joblib"
    write_kaggle_dataset(data, n_train=60, n_test=4, seed=2)
    assert main(["train", "--data", str(data), "--ensemble", "2", "--jobs", "2", "--epochs", "2",
                 "--device", "cpu", "--precision", "fp32", "--model", str(model)]) == 0
    out = capfd.readouterr().out
    assert "an ensemble of 2 nets (seeds 0, 1), 2 at a time" in out
    assert "[seed 1]" in out                       # each worker's epoch table, labelled
    record = json.loads(modelfile.json_path(model).read_text())
    assert record["ensemble"]["seeds"] == [0, 1] and record["ensemble"]["jobs"] == 2
    assert record["metrics"]["epochs_run"] == {"seed 0": 2, "seed 1": 2}
    assert record["metrics"]["valid_rmse_px"] > 0
    loaded = modelfile.load_model(model)
    assert isinstance(loaded, SeedEnsemble) and len(loaded.estimators_) == 2
    assert main(["submit", "--data", str(data), "--model", str(model), "--tta",
                 "--out", str(tmp_path / "subs")]) == 0
    assert len(list((tmp_path / "subs").glob("*.csv"))) == 1
    capfd.readouterr()
    assert main(["report", "--data", str(data), "--model", str(model),
                 "--out", str(tmp_path / "reports")]) == 0
    said = capfd.readouterr().out
    assert "the model's own validation split" in said and "NOTE" not in said


@pytest.mark.slow
def test_the_budgets_recipe_is_said_and_saved(tmp_path, monkeypatch, capfd):
    from joblib.externals.loky import get_reusable_executor

    from kfkd_kit import recipes
    from kfkd_kit.utils import precision
    get_reusable_executor().shutdown(wait=True)
    pair = recipes.RECIPES[1]
    assert pair.name == "pair"
    # the rule, not 10 minutes of training
    monkeypatch.setattr(recipes, "RECIPES", (recipes.Recipe(pair.name, "net8", 5, pair.models,
                                                            pair.heads, measured=pair.measured),))
    monkeypatch.setattr("joblib.cpu_count", lambda: 2)
    monkeypatch.setattr(precision, "bf16_support", lambda device: "AMX")   # in this process only
    data, model = tmp_path / "data", tmp_path / "models" / "net8.joblib"
    write_kaggle_dataset(data, n_train=40, n_test=4, seed=2)
    # the workers train in what their CPU computes (auto): bf16 here only where it is native
    assert main(["train", "--data", str(data), "--net", "net8", "--budget", "6s", "--jobs", "2",
                 "--device", "cpu", "--model", str(model), "--quiet"]) == 0
    out = capfd.readouterr().out
    assert "recipe pair: a budget of 0.1 minutes on 2 cores with native bf16: 2 net8 nets" in out
    assert "--ensemble 1 (ENSEMBLE=1) trains one net" in out
    record = json.loads(modelfile.json_path(model).read_text())
    assert record["ensemble"]["heads"] == ["dense", "softargmax"]
    assert record["ensemble"]["member_budget_s"] == 6 and record["params"]["budget_s"] == 6
    assert record["recipe"]["name"] == "pair" and record["recipe"]["jobs"] == 2
    assert isinstance(modelfile.load_model(model), SeedEnsemble)


def test_models_with_specialists_is_refused(tmp_path, capsys):
    data = tmp_path / "data"
    write_kaggle_dataset(data, n_train=20, n_test=2, seed=2)
    code = main(["train", "--data", str(data), "--net", "specialists", "--ensemble", "2",
                 "--model", str(tmp_path / "m.joblib")])
    assert code == 2 and "specialists" in capsys.readouterr().err
    assert not (tmp_path / "m.joblib").exists()


def test_heads_alternate_over_the_members_with_their_own_layers(tiny_xy):
    X, y = tiny_xy
    net8 = configs.build("net8", epochs=1, verbose=0, device="cpu", precision="fp32")
    net8.set_params(net__module__width=4, net__batch_size=16)
    ensemble = SeedEnsemble(net8, seeds=3, n_jobs=1, heads=["dense", "softargmax"])
    assert ensemble.plan()["heads"] == ["dense", "softargmax", "dense"]
    ensemble.fit(X, y)
    assert list(nets(ensemble)) == ["seed 0, dense", "seed 1, softargmax", "seed 2, dense"]
    modules = [configs.inner_net(m).module_ for m in ensemble.estimators_]
    assert [m.head[-1].__class__.__name__ for m in modules] == ["Linear", "SoftArgmax", "Linear"]
    assert [configs.inner_net(m).module__layers for m in ensemble.estimators_] == [
        BNCNN.LAYERS, BNCNN.LAYERS_12, BNCNN.LAYERS]
    assert "module__head" not in configs.inner_net(net8).get_params()   # the template is untouched
    assert ensemble.predict(X[:3]).shape == (3, 30)


@pytest.mark.parametrize("estimator, heads, message", [
    ("net8", ["dense", "heatmap"], "heads must be among dense, softargmax"),
    ("net8", [], "heads must be among"),
    ("net1", ["softargmax"], "needs a BNCNN net"),
])
def test_bad_heads_are_refused(estimator, heads, message):
    with pytest.raises(ValueError, match=message):
        SeedEnsemble(configs.build(estimator), heads=heads).plan()


def test_train_heads_is_refused_for_a_net_without_heads(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "data"), "--net", "net2", "--heads", "softargmax",
                 "--model", str(tmp_path / "m.joblib")])
    assert code == 2 and "only net8 has a choice of heads" in capsys.readouterr().err
    assert not (tmp_path / "m.joblib").exists() and not (tmp_path / "data").exists()


@pytest.mark.slow
def test_train_heads_saves_a_mixed_ensemble_as_skops(tmp_path, capsys):
    data, model = tmp_path / "data", tmp_path / "models" / "net8.skops"
    write_kaggle_dataset(data, n_train=40, n_test=4, seed=2)
    assert main(["train", "--data", str(data), "--net", "net8", "--ensemble", "2", "--jobs", "1",
                 "--heads", "dense,softargmax", "--epochs", "1", "--device", "cpu",
                 "--precision", "fp32", "--model", str(model), "--quiet"]) == 0
    assert "(seeds 0, 1, heads dense, softargmax)" in capsys.readouterr().out
    record = json.loads(modelfile.json_path(model).read_text())
    assert record["ensemble"]["heads"] == ["dense", "softargmax"]
    assert record["metrics"]["epochs_run"] == {"seed 0, dense": 1, "seed 1, softargmax": 1}
    loaded = modelfile.load_model(model)
    assert configs.inner_net(loaded.estimators_[1]).module__head == "softargmax"
    X = np.random.default_rng(0).integers(0, 256, (2, 9216)).astype(np.float32)
    assert loaded.predict(X).shape == (2, 30)


@pytest.mark.slow
def test_train_heads_softargmax_alone_is_one_plain_net(tmp_path, capsys):
    data, model = tmp_path / "data", tmp_path / "models" / "net8.joblib"
    write_kaggle_dataset(data, n_train=40, n_test=4, seed=2)
    assert main(["train", "--data", str(data), "--net", "net8", "--heads", "dense,softargmax",
                 "--model", str(model), "--quiet"]) == 2
    assert "one net has one head" in capsys.readouterr().err and not model.exists()
    assert main(["train", "--data", str(data), "--net", "net8", "--heads", "softargmax",
                 "--epochs", "1", "--device", "cpu", "--precision", "fp32", "--model", str(model),
                 "--quiet"]) == 0
    loaded = modelfile.load_model(model)
    assert not isinstance(loaded, SeedEnsemble)
    assert type(configs.inner_net(loaded).module_.output).__name__ == "SoftArgmax"
    record = json.loads(modelfile.json_path(model).read_text())
    assert record["params"]["module"]["head"] == "softargmax"
