"""Model selection: the pixel-RMSE scorer, k-fold CV, GridSearchCV (in-process and on a
real Dask LocalCluster) and the fold ensemble. Tiny data, 1-2 epochs of net1."""
import json
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from skorch.callbacks import Callback

from kfkd_kit import configs
from kfkd_kit.search import grid as search_grid, selection
from kfkd_kit.commands import cv, grid
from kfkd_kit.meta.ensemble import FoldEnsemble
from kfkd_kit.net.losses import MaskedMSELoss
from kfkd_kit.net.metrics import masked_rmse_px

EPOCHS = 2


@pytest.fixture
def xy(tiny_xy):
    """tiny_xy (60 rows, a third with only 8 labels) plus one row with no label at all."""
    X, y = tiny_xy
    y = y.copy()
    y[1] = np.nan
    return X, y


def tiny_net(**kw):
    kw = dict(dict(epochs=EPOCHS, verbose=0, device="cpu", complete_only=False), **kw)
    return configs.build("net1", **kw)


class Fixed(RegressorMixin, BaseEstimator):
    """Predicts a fixed array, whatever X is: for checking scorers by hand."""

    def __init__(self, prediction=None):
        self.prediction = prediction

    def fit(self, X, y):
        self.fitted_ = True
        return self

    def predict(self, X):
        return np.asarray(self.prediction)[: len(X)]


# ---------------------------------------------------------------- scorer and masked loss


def test_rmse_px_scorer_matches_hand_computation():
    y = np.array([[10.0, np.nan, 30.0], [np.nan, np.nan, np.nan], [40.0, 50.0, np.nan]])
    pred = np.array([[11.0, 99.0, 27.0], [0.0, 0.0, 0.0], [40.0, 54.0, 1e6]])
    # labelled errors: 1, 3, 0, 4 -> sqrt((1 + 9 + 0 + 16) / 4)
    expected = np.sqrt(26 / 4)
    score = selection.rmse_px_scorer(Fixed(pred).fit(None, None), np.zeros((3, 1)), y)
    assert score == pytest.approx(-expected)  # sklearn convention: greater is better
    assert selection.scores_to_px(score) == pytest.approx(expected)
    assert selection.scores_to_px([-1.0, -2.5]) == pytest.approx([1.0, 2.5])


def test_progress_scorer_scores_like_the_scorer_and_survives_pickling():
    X = np.arange(12, dtype=np.uint8).reshape(6, 2)
    y = np.array([[1.0, np.nan]] * 6)
    pred = np.array([[3.0, 0.0]] * 6)
    splits = [(np.arange(3, 6), np.arange(3)), (np.arange(3), np.arange(3, 6))]
    lines = []
    scorer = selection.ProgressScorer(X, splits, say=lines.append)
    assert scorer(Fixed(pred).fit(X, y), X[3:], y[3:]) == pytest.approx(-2.0)
    assert lines == ["fold 2/2: rmse 2.000 px"]
    remote = pickle.loads(pickle.dumps(scorer))
    assert remote.say is None and remote.fold_of == scorer.fold_of


def test_masked_loss_gradient_ignores_missing_labels_by_hand():
    pred = torch.tensor([[1.0, 2.0, 0.0], [3.0, 5.0, 7.0]], requires_grad=True)
    true = torch.tensor([[0.0, float("nan"), 1.0], [float("nan")] * 3])
    loss = MaskedMSELoss()(pred, true)
    loss.backward()
    # two labelled values: errors 1 and -1 -> loss (1 + 1) / 2, grad 2 * err / 2
    assert loss.item() == pytest.approx(1.0)
    assert pred.grad.tolist() == [[1.0, 0.0, -1.0], [0.0, 0.0, 0.0]]


@pytest.mark.slow
def test_nan_targets_pass_through_sklearn_cross_validate_and_gridsearch(xy):
    X, y = xy
    assert np.isnan(y).all(axis=1).any()  # a row with no label at all
    out = cross_validate(tiny_net(valid_fraction=0.2), X, y, cv=2,
                         scoring=selection.rmse_px_scorer, error_score="raise")
    assert np.all(np.isfinite(out["test_score"])) and np.all(out["test_score"] < 0)
    search = GridSearchCV(tiny_net(epochs=1, valid_fraction=0.0),
                          {"net__lr": [0.01], "net__optimizer__momentum": [0.9]},
                          scoring=selection.rmse_px_scorer, cv=2, error_score="raise").fit(X, y)
    assert np.isfinite(search.best_score_)


def test_complete_only_is_the_nets_own_choice_of_rows_and_scoring_uses_all_rows(xy):
    X, y = xy
    X = X.copy()
    X[:, 0] = np.arange(len(X))  # row id in pixel 0
    pipe = tiny_net(valid_fraction=0.0, complete_only=True)
    net = pipe.named_steps["net"]
    pipe.set_params(net__callbacks=list(net.callbacks) + [("spy", RowSpy())])
    result = selection.cross_validate_net(pipe, X, y, folds=3, random_state=1, keep_models=True,
                                          say=lambda _: None)
    complete = np.flatnonzero(np.isfinite(y).all(axis=1))
    assert len(complete) == 39
    for model, (train, test), row in zip(result.ensemble.estimators_, result.ensemble.folds_,
                                         result.rows):
        seen = dict(model.named_steps["net"].callbacks_)["spy"].rows_
        assert sorted(seen) == sorted(set(train) & set(complete))
        # scored like every other net: all held-out rows, over their labelled values
        assert row["test_rows"] == len(test)
        assert row["rmse_px"] == pytest.approx(masked_rmse_px(y[test], model.predict(X[test])))
    assert result.params["complete_only"] is True


# ---------------------------------------------------------------- cross-validation


def test_cross_validate_net_end_to_end(xy, tmp_path):
    X, y = xy
    lines = []
    result = selection.cross_validate_net(tiny_net(valid_fraction=0.0), X, y, folds=3, random_state=0,
                                          keep_models=True, name="net1", say=lines.append)
    assert [row["fold"] for row in result.rows] == [1, 2, 3]
    assert [row["test_rows"] for row in result.rows] == [20, 20, 20]
    assert all(row["epochs_run"] == EPOCHS for row in result.rows)
    # per-fold scores by hand: each kept model on its own held-out rows
    splits = list(KFold(3, shuffle=True, random_state=0).split(X))
    models = result.ensemble.estimators_
    by_hand = [masked_rmse_px(y[test], m.predict(X[test])) for m, (_, test) in zip(models, splits)]
    assert result.rmse_px == pytest.approx(by_hand)
    assert result.mean_rmse_px == pytest.approx(np.mean(by_hand))
    assert result.std_rmse_px == pytest.approx(np.std(by_hand))
    for (train, test), (kept_train, kept_test) in zip(splits, result.ensemble.folds_):
        assert np.array_equal(train, kept_train) and np.array_equal(test, kept_test)
    # progress: one compact line per fold, and no per-epoch table
    progress = [line for line in lines if line.startswith("fold ")]
    assert [line.split(":")[0] for line in progress] == ["fold 1/3", "fold 2/3", "fold 3/3"]
    assert all(" px (" in line for line in progress)
    assert not any("train_loss" in line for line in lines)
    assert "mean ± std RMSE" in result.table()

    csv_path, json_path = cv.write_cv(result, tmp_path / "cv",
                                             meta={"fingerprint": "abc123"})
    assert csv_path.name.startswith("net1-") and csv_path.name.endswith("Z.csv")
    table = pd.read_csv(csv_path)
    assert len(table) == 3 and table["rmse_px"].tolist() == pytest.approx(by_hand)
    summary = json.loads(json_path.read_text())
    assert summary["net"] == "net1" and summary["folds"] == 3 and summary["seed"] == 0
    assert summary["epochs"] == EPOCHS and summary["data"]["fingerprint"] == "abc123"
    assert summary["mean_rmse_px"] == pytest.approx(np.mean(by_hand))
    assert summary["per_fold_rmse_px"] == pytest.approx(by_hand)
    assert "torch" in summary["versions"]
    # a second run in the same second does not overwrite the first
    again, _ = cv.write_cv(result, tmp_path / "cv")
    assert again != csv_path and csv_path.exists()

    # the kept fold models as ONE estimator, saved and loaded like any model
    model_path, _ = cv.save_ensemble(result, tmp_path / "models" / "cv3.ensemble.joblib")
    loaded = joblib.load(model_path)
    expected = np.mean([m.predict(X[:5]) for m in models], axis=0)
    assert loaded.predict(X[:5]).shape == (5, 30)
    assert np.allclose(loaded.predict(X[:5]), expected, atol=1e-4)


class RowSpy(Callback):
    """Records the ids (pixel 0) of the rows a net is fitted on."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.rows_ = np.rint(np.asarray(X)[:, 0] * 255).astype(int)


@pytest.mark.slow
def test_cv_does_not_leak_the_held_out_fold(xy):
    X, y = xy
    X = X.copy()
    X[:, 0] = np.arange(len(X))  # row id in pixel 0
    pipe = tiny_net(valid_fraction=0.25, patience=5)
    net = pipe.named_steps["net"]
    pipe.set_params(net__callbacks=list(net.callbacks) + [("spy", RowSpy())])
    result = selection.cross_validate_net(pipe, X, y, folds=3, random_state=1, keep_models=True,
                                          say=lambda _: None)
    for model, (train, test) in zip(result.ensemble.estimators_, result.ensemble.folds_):
        fitted = model.named_steps["net"]
        seen = dict(fitted.callbacks_)["spy"].rows_
        assert sorted(seen) == sorted(train) and not set(seen) & set(test)
        # the net's own validation split (and so early stopping) came from the training part
        assert "valid_loss" in fitted.history[-1]


def test_cross_validate_rejects_bad_folds(xy):
    X, y = xy
    with pytest.raises(ValueError, match="folds"):
        selection.cross_validate_net(tiny_net(), X, y, folds=1, say=lambda _: None)
    with pytest.raises(ValueError, match="cannot be split"):
        selection.cross_validate_net(tiny_net(), X[:2], y[:2], folds=3, say=lambda _: None)


@pytest.mark.slow
def test_fold_ensemble_fits_clones_and_averages(xy):
    X, y = xy
    template = tiny_net(epochs=1, valid_fraction=0.0)
    ensemble = FoldEnsemble(template, cv=2, random_state=0)
    assert not hasattr(clone(ensemble), "estimators_")
    ensemble.fit(X, y)
    assert len(ensemble.estimators_) == 2 and ensemble.n_features_in_ == 9216
    assert all(m is not template for m in ensemble.estimators_)
    tests = [set(test) for _, test in ensemble.folds_]
    assert not tests[0] & tests[1] and tests[0] | tests[1] == set(range(len(X)))
    each = ensemble.predict_each(X[:4])
    assert each.shape == (2, 4, 30)
    assert np.allclose(ensemble.predict(X[:4]), each.mean(axis=0), atol=1e-4)
    assert ensemble.score(X, y) == pytest.approx(-masked_rmse_px(y, ensemble.predict(X)))
    restored = pickle.loads(pickle.dumps(ensemble))
    assert np.array_equal(restored.predict(X[:4]), ensemble.predict(X[:4]))


# ---------------------------------------------------------------- grid search


@pytest.mark.slow
def test_grid_search_end_to_end(xy, tmp_path):
    X, y = xy
    lines = []
    search = search_grid.grid_search(tiny_net(valid_fraction=0.0), X, y, lrs=[0.001, 0.01],
                                   momenta=[0.8, 0.9], folds=2, random_state=0, refit=True, name="net1",
                                   say=lines.append)
    results = search.cv_results_
    assert len(results["params"]) == 4 and search.n_splits_ == 2
    assert search.best_params_["net__lr"] in (0.001, 0.01)
    progress = [line for line in lines if line.startswith("candidate ")]
    assert len(progress) == 8
    assert progress[0].startswith("candidate 1/4 (lr=0.001, momentum=0.8) fold 1/2: rmse ")
    assert progress[-1].startswith("candidate 4/4 (lr=0.01, momentum=0.9) fold 2/2: rmse ")
    assert not any("train_loss" in line for line in lines)

    # the search's folds and fits are exactly cross_validate_net's with the same seed
    best = search.best_params_
    template = tiny_net(valid_fraction=0.0).set_params(**best)
    cv = selection.cross_validate_net(template, X, y, folds=2, random_state=0,
                                      say=lambda _: None)
    i = search.best_index_
    assert cv.rmse_px == pytest.approx([-results[f"split{k}_test_score"][i] for k in range(2)])

    csv_path, json_path, png_path = grid.write_grid(search, tmp_path / "cv",
                                                         meta={"fingerprint": "abc"})
    table = pd.read_csv(csv_path)
    assert len(table) == 4
    assert table["mean_rmse_px"].tolist() == pytest.approx(list(-results["mean_test_score"]))
    assert {"lr", "momentum", "split0_rmse_px", "rank_test_score"} <= set(table.columns)
    best_json = json.loads(json_path.read_text())
    assert best_json["best_params"] == {"lr": best["net__lr"],
                                        "momentum": best["net__optimizer__momentum"]}
    assert best_json["best_mean_rmse_px"] == pytest.approx(-search.best_score_)
    assert best_json["search"]["epochs"] == EPOCHS and best_json["data"]["fingerprint"] == "abc"
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lrs, momenta, rmse = search_grid.heatmap_matrix(search)
    assert lrs == [0.001, 0.01] and momenta == [0.8, 0.9]
    assert rmse[lrs.index(best["net__lr"]), momenta.index(best["net__optimizer__momentum"])] \
        == pytest.approx(-search.best_score_)

    model_path, meta_path = grid.save_refit(search, tmp_path / "models" / "net1-grid.joblib")
    model = joblib.load(model_path)
    assert model.predict(X[:3]).shape == (3, 30)
    assert json.loads(meta_path.read_text())["params"]["lr"] == best["net__lr"]


def test_grid_arguments_are_checked(xy):
    X, y = xy
    assert search_grid.parse_floats("0.001, 0.01 0.1") == [0.001, 0.01, 0.1]
    with pytest.raises(ValueError, match="numbers"):
        search_grid.parse_floats("0.1,fast")
    with pytest.raises(ValueError, match="momenta"):
        search_grid.param_grid([0.01], [1.5])
    with pytest.raises(ValueError, match="positive"):
        search_grid.param_grid([0.0], [0.9])
    for name in ("net4", "specialists", "net8"):
        with pytest.raises(ValueError, match=f"{name} sets lr/momentum every epoch"):
            search_grid.grid_search(configs.build(name, epochs=1, device="cpu"), X, y, lrs=[0.01],
                                  momenta=[0.9], folds=2, name=name, say=lambda _: None)


@pytest.mark.slow
def test_grid_search_on_dask_local_cluster_matches_in_process(xy, one_thread):
    pytest.importorskip("distributed")
    X, y = xy
    kw = dict(lrs=[0.001, 0.01], momenta=[0.8, 0.9], folds=2, random_state=3)
    local = search_grid.grid_search(tiny_net(seed=3, valid_fraction=0.0), X, y, say=lambda _: None, **kw)
    lines = []
    remote = search_grid.grid_search(tiny_net(seed=3, valid_fraction=0.0), X, y, dask_workers=2,
                                   say=lines.append, **kw)
    assert remote.best_params_ == local.best_params_
    for key in ["mean_test_score"] + [f"split{k}_test_score" for k in range(2)]:
        np.testing.assert_allclose(remote.cv_results_[key], local.cv_results_[key], rtol=1e-6)
    assert any(line.startswith("Dask: 2 workers") for line in lines)
    # the workers' progress comes back to the caller's say, each fit's line once
    progress = sorted(line.split(":")[0] for line in lines if line.startswith("candidate"))
    assert len(progress) == len(set(progress)) == 8, progress
    assert remote.run_info_["dask"] == "local cluster, 2 workers"


# ---------------------------------------------------------------- the commands' functions


def test_run_cv_and_run_grid_on_synthetic_files(tmp_path):
    from kfkd_kit import data
    from kfkd_kit.data import synthetic_dataset
    folder = tmp_path / "data"
    synthetic_dataset.write_kaggle_dataset(folder, n_train=48, n_test=6, seed=0)
    lines = []
    net1 = tiny_net(epochs=1, complete_only=False, valid_fraction=0.0)
    cv_run = cv.run_cv(net1, "net1", folder, folds=2, out_dir=tmp_path / "cv", keep_models=True,
                          model_path=tmp_path / "models" / "net1-cv2.ensemble.joblib",
                          say=lines.append)
    summary = json.loads(open(cv_run["json"]).read())
    assert summary["rows"] == 48 and len(summary["per_fold_rmse_px"]) == 2
    assert summary["data"]["fingerprint"] == data.load_training(folder).fingerprint
    # what `make submit MODEL=...ensemble.joblib` does with it
    test = data.load_test(folder)
    assert joblib.load(cv_run["model"]).predict(test.X).shape == (6, 30)

    grid_run = grid.run_grid(net1, "net1", folder, lrs=[0.01, 0.03], momenta=[0.9], folds=2,
                              out_dir=tmp_path / "cv", refit=True,
                              model_path=tmp_path / "models" / "net1-grid.joblib",
                              say=lines.append)
    assert set(grid_run) >= {"csv", "json", "png", "model", "best_params"}
    assert joblib.load(grid_run["model"]).predict(test.X).shape == (6, 30)
    assert any("best: lr=" in line for line in lines)
    from kfkd_kit.photo.framing import layout_of           # predict frames photos with it
    for saved in (cv_run["model"], grid_run["model"]):
        assert layout_of(joblib.load(saved)).shape == (30,)
