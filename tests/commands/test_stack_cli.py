"""cv -> its out-of-fold files -> stack -> submit, through the command line, on tiny
synthetic data; runs whose folds differ are refused in one line, writing nothing."""
import json

import numpy as np
import pandas as pd
import pytest

from kfkd_kit.cli import main
from kfkd_kit.data import write_kaggle_dataset

pytestmark = pytest.mark.slow   # every test here runs commands through the CLI


def cv_run(root, name, *extra):
    args = ["cv", "--data", str(root / "data"), "--epochs", "1", "--folds", "2",
            "--device", "cpu", "--out", str(root / "cv"), "--keep-models",
            "--model", str(root / "models" / f"{name}.joblib"), *extra]
    assert main(args) == 0
    return json.loads((root / "models" / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("stack")
    write_kaggle_dataset(root / "data", n_train=40, n_test=5, seed=3)
    cv_run(root, "a", "--lr", "0.01")
    cv_run(root, "b", "--lr", "0.03")
    return root, sorted(p.with_suffix("") for p in (root / "cv").glob("net1-*.json"))


def test_cv_writes_out_of_fold_predictions_for_every_row_and_test_image(runs):
    root, names = runs
    assert len(names) == 2
    summary = json.loads(names[0].with_suffix(".json").read_text())
    record = json.loads(open(summary["oof"]).read())
    assert record["rows"] == 40 and record["folds"] == 2 and record["model"]["path"]
    train = pd.read_csv(root / "cv" / record["files"]["train"])
    assert len(train) == 40 and set(train["fold"]) == {1, 2} and train.notna().all().all()
    test = pd.read_csv(root / "cv" / record["files"]["test"])
    assert len(test) == 2 * 5 and list(test["fold"]) == [1] * 5 + [2] * 5
    from kfkd_kit.photo.framing import layout_of
    from kfkd_kit.utils.modelfile import load_model
    assert layout_of(load_model(record["model"]["path"])).shape == (30,)   # predict frames with it


def test_stack_saves_one_model_that_submit_takes(runs, capsys):
    root, names = runs
    model = root / "models" / "stack.skops"
    assert main(["stack", "--data", str(root / "data"), "--runs", ",".join(map(str, names)),
                 "--model", str(model)]) == 0
    out = capsys.readouterr().out
    assert "stack: nnls" in out and "stack: elasticnet" in out and "<- best" in out
    record = json.loads(model.with_suffix(".json").read_text())
    assert record["kind"] == "stack" and record["metrics"]["rmse_of"] == "cv"
    assert record["method"] in ("mean", "nnls", "elasticnet")
    assert record["metrics"]["rmse_px"] == min(record["nested_cv_rmse_px"].values())
    assert main(["submit", "--data", str(root / "data"), "--model", str(model), "--tta",
                 "--out", str(root / "subs.csv")]) == 0
    table = pd.read_csv(root / "subs.csv")
    assert len(table) and np.isfinite(table["Location"]).all()
    # the same runs give the same stack
    again = root / "models" / "again.skops"
    assert main(["stack", "--data", str(root / "data"), "--runs", ",".join(map(str, names)),
                 "--model", str(again)]) == 0
    assert json.loads(again.with_suffix(".json").read_text())["nested_cv_rmse_px"] == \
        record["nested_cv_rmse_px"]


def test_stack_refit_trains_each_runs_net_again_on_every_row(runs, capsys):
    from sklearn.base import clone
    from kfkd_kit.data import load_training
    from kfkd_kit.meta.ensemble import FoldEnsemble
    from kfkd_kit.utils.modelfile import load_model
    root, names = runs
    folds, refit = root / "models" / "folds.joblib", root / "models" / "refit.joblib"
    for path, members in ((folds, "folds"), (refit, "refit")):
        assert main(["stack", "--data", str(root / "data"), "--runs",
                     ",".join(map(str, names)), "--model", str(path),
                     "--members", members]) == 0
    assert "refitting 2 members on all 40 rows" in capsys.readouterr().out
    by_folds, by_refit = load_model(folds), load_model(refit)
    assert all(isinstance(m, FoldEnsemble) for m in by_folds.estimators_)
    assert not any(isinstance(m, FoldEnsemble) for m in by_refit.estimators_)
    # each refitted member is its run's template (its own lr) trained on every row
    assert [m.named_steps["net"].lr for m in by_refit.estimators_] == [0.01, 0.03]
    training = load_training(root / "data")
    again = clone(by_folds.estimators_[1].estimator).fit(training.X, training.y)
    np.testing.assert_array_equal(again.predict(training.X),
                                  by_refit.estimators_[1].predict(training.X))
    # one meta-model (it learnt from the fold models' out-of-fold predictions) for both
    np.testing.assert_array_equal(by_folds.coef_, by_refit.coef_)
    assert json.loads(refit.with_suffix(".json").read_text())["members_are"] == "refit"
    assert main(["submit", "--data", str(root / "data"), "--model", str(refit),
                 "--out", str(root / "refit-subs.csv")]) == 0
    assert np.isfinite(pd.read_csv(root / "refit-subs.csv")["Location"]).all()



def test_a_stack_predicts_faces_in_photos_and_exports_like_any_model(runs, tmp_path):
    from pathlib import Path
    root, names = runs
    model = root / "models" / "photos.joblib"
    assert main(["stack", "--data", str(root / "data"), "--runs", ",".join(map(str, names)),
                 "--model", str(model)]) == 0
    photo = Path(__file__).resolve().parents[1] / "fixtures" / "astronaut.jpg"
    for path in (model, model.with_suffix(".onnx")):
        if path.suffix == ".onnx":
            assert main(["export", "--model", str(model)]) == 0
        out = tmp_path / f"{path.suffix[1:]}.csv"
        # the stack carries the training rows' mean layout, so no --data is needed
        assert main(["predict", "--model", str(path), str(photo), "--detector", "haar",
                     "--out", str(out)]) == 0
        table = pd.read_csv(out)
        assert len(table) == 1 and np.isfinite(table.filter(like="_x").to_numpy()).all()


def test_runs_with_other_folds_are_refused_in_one_line(runs, capsys):
    root, names = runs
    cv_run(root, "c", "--seed", "1")
    other = [p.with_suffix("") for p in (root / "cv").glob("net1-*.json")
             if p.with_suffix("") not in names]
    model = root / "models" / "refused.joblib"
    assert main(["stack", "--data", str(root / "data"), "--runs",
                 f"{names[0]},{other[0]}", "--model", str(model)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "its folds differ" in err and "same FOLDS and SEED" in err
    assert not model.exists() and not model.with_suffix(".json").exists()


def test_cv_of_a_recipe_keeps_each_folds_ensemble_and_exports_them(runs, tmp_path, capsys):
    """--ensemble (a recipe of several nets) in each fold: what `kfkd train` would fit."""
    from kfkd_kit.meta.ensemble import FoldEnsemble, SeedEnsemble
    from kfkd_kit.photo.onnxgraph import check_batch
    from kfkd_kit.photo.onnxmodel import OnnxKeypoints
    from kfkd_kit.utils.modelfile import load_model
    root, _ = runs
    record = cv_run(root, "pairs", "--ensemble", "2", "--jobs", "1", "--precision", "fp32", "--out",
                    str(tmp_path / "cv"))
    assert "each fold: recipe as given" in capsys.readouterr().out
    kept = load_model(root / "models" / "pairs.joblib")
    assert record["models"] == 2
    assert isinstance(kept, FoldEnsemble) and len(kept.estimators_) == 2
    assert all(isinstance(fold, SeedEnsemble) and len(fold.estimators_) == 2
               for fold in kept.estimators_)
    assert main(["export", "--model", str(root / "models" / "pairs.joblib")]) == 0
    crops = check_batch(8, seed=5)
    np.testing.assert_allclose(OnnxKeypoints(root / "models" / "pairs.onnx")(crops),
                               kept.predict(crops.reshape(8, -1)), atol=1e-3)
