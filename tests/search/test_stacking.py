"""Out-of-fold predictions (cross_validate_net, their files read back exactly, bad files as
one line) and stacking's checks and scores on cv runs."""
import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from kfkd_kit import configs
from kfkd_kit.commands import cv
from kfkd_kit.search import selection
from kfkd_kit.search.oof import find_run, folds_sha256, read_run
from kfkd_kit.search.stacking import check_runs, load_members, refit_members, score_stacks


@pytest.fixture(scope="module")
def result():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (45, 9216), dtype=np.uint8)
    y = rng.uniform(20, 76, (45, 30)).astype(np.float32)
    y[::3, 4:20] = np.nan
    X_test = rng.integers(0, 256, (4, 9216), dtype=np.uint8)
    net = configs.build("net1", epochs=1, verbose=0, device="cpu", complete_only=False,
                        valid_fraction=0.0)
    out = selection.cross_validate_net(net, X, y, folds=3, random_state=0, keep_models=True,
                                       name="net1", say=lambda line: None, X_test=X_test)
    return out, X, y, X_test


def test_every_row_is_predicted_by_the_fold_model_that_held_it_out(result):
    out, X, y, X_test = result
    assert out.oof.shape == (45, 30) and np.isfinite(out.oof).all()
    for k, (model, (train, test)) in enumerate(zip(out.ensemble.estimators_,
                                                   out.ensemble.folds_), start=1):
        assert (out.fold_of[test] == k).all()
        assert np.allclose(out.oof[test], model.predict(X[test]), atol=1e-5)
        assert np.allclose(out.test_predictions[k - 1], model.predict(X_test), atol=1e-5)
    from kfkd_kit.net.metrics import masked_rmse_px
    assert out.oof_rmse_px == pytest.approx(masked_rmse_px(y, out.oof))


def write_run(out, folder, run="net1-20260101T000000Z", fingerprint="f00d", model=None):
    test = SimpleNamespace(image_ids=np.array([11, 12, 13, 14]), X=np.zeros((4, 1)),
                           source="test.csv", fingerprint="7e57")
    return cv.write_oof(out, folder, run, meta={"fingerprint": fingerprint}, test=test,
                        model=model)


def test_the_files_read_back_exactly(result, tmp_path):
    out = result[0]
    paths = write_run(out, tmp_path)
    table = pd.read_csv(paths["train"])
    assert list(table.columns[:3]) == ["RowIndex", "fold", "left_eye_center_x"]
    assert list(pd.read_csv(paths["test"]).columns[:2]) == ["ImageId", "fold"]
    record = json.loads(paths["json"].read_text())
    assert record["folds"] == 3 and record["seed"] == 0 and record["net"] == "net1"
    assert record["data"]["fingerprint"] == "f00d" and record["test"]["images"] == 4
    for name in ("oof-net1-20260101T000000Z.json", "net1-20260101T000000Z",
                 "net1-20260101T000000Z.json", "oof-net1-20260101T000000Z"):
        assert find_run(tmp_path / name) == paths["json"]
    run = read_run(tmp_path / "net1-20260101T000000Z")
    assert np.array_equal(run.predictions, out.oof)            # float32, exactly
    assert np.array_equal(run.fold_of, out.fold_of)
    assert np.array_equal(run.test_predictions, out.test_predictions)
    assert run.test_ids.tolist() == [11, 12, 13, 14]


def test_a_damaged_file_is_one_line_naming_file_row_and_column(result, tmp_path):
    paths = write_run(result[0], tmp_path)
    table = pd.read_csv(paths["train"])
    table.loc[6, "nose_tip_y"] = np.nan
    table.to_csv(paths["train"], index=False)
    with pytest.raises(ValueError, match=r"oof-net1-20260101T000000Z.csv: row 7, column "
                                         r"nose_tip_y: 'nan' is not a number"):
        read_run(paths["json"])
    with pytest.raises(FileNotFoundError, match="no out-of-fold predictions"):
        read_run(tmp_path / "net1-nope")


def test_runs_must_share_data_and_folds(result, tmp_path):
    out = result[0]
    a = read_run(write_run(out, tmp_path / "a", run="net1-a")["json"])
    b = read_run(write_run(out, tmp_path / "b", run="net1-b")["json"])
    check_runs([a, b])
    other_folds = replace(out, fold_of=np.roll(out.fold_of, 1))
    c = read_run(write_run(other_folds, tmp_path / "c", run="net1-c")["json"])
    with pytest.raises(ValueError, match="its folds differ from .*same FOLDS and SEED"):
        check_runs([a, c])
    d = read_run(write_run(out, tmp_path / "d", run="net1-d", fingerprint="beef")["json"])
    with pytest.raises(ValueError, match="ran on other data"):
        check_runs([a, d])
    training = SimpleNamespace(fingerprint="beef", source="training.csv", X=np.zeros((45, 1)))
    with pytest.raises(ValueError, match="is not training.csv"):
        check_runs([a], training)
    with pytest.raises(ValueError, match="the same run is given twice"):
        check_runs([a, a])


def test_scores_and_the_members_fold_models(result, tmp_path):
    out, X, y, _ = result
    biased = replace(out, oof=out.oof + 4)
    a = read_run(write_run(out, tmp_path / "a", run="net1-a")["json"])
    b = read_run(write_run(biased, tmp_path / "b", run="net1-b")["json"])
    lines = []
    scores = score_stacks([a, b], y, methods=("mean", "nnls"), say=lines.append)
    assert scores.members["net1-b"] > scores.members["net1-a"]
    assert set(scores.methods) == {"mean", "nnls"} and scores.best in scores.methods
    assert "stack: nnls" in scores.table() and "<- best" in scores.table()
    with pytest.raises(ValueError, match="kept no fold models; run make cv again"):
        load_members([a])
    model, record = cv.save_ensemble(out, tmp_path / "m.joblib")
    sha = json.loads(record.read_text())["model_file"]["sha256"]
    kept = read_run(write_run(out, tmp_path / "k", run="net1-k",
                              model={"path": str(model), "sha256": sha})["json"])
    [member] = load_members([kept])
    assert np.allclose(member.predict(X[:3]), out.ensemble.predict(X[:3]))
    wrong = read_run(write_run(out, tmp_path / "w", run="net1-w",
                               model={"path": str(model), "sha256": "0" * 64})["json"])
    with pytest.raises(ValueError, match="another cv run saved over it"):
        load_members([wrong])
    assert folds_sha256(a.fold_of) == a.record["folds_sha256"]


def test_refit_members_trains_each_template_on_every_row(result):
    out, X, y, _ = result
    lines = []
    [refit] = refit_members([out.ensemble], X, y, say=lines.append)
    assert lines == [f"refitting 1 member on all {len(X)} rows"]
    assert refit is not out.ensemble.estimator                 # a clone, the template kept
    again = configs.build("net1", epochs=1, verbose=0, device="cpu", complete_only=False,
                          valid_fraction=0.0).fit(X, y)
    np.testing.assert_array_equal(refit.predict(X), again.predict(X))
    with pytest.raises(ValueError, match="has no template to refit"):
        refit_members([again.named_steps["net"]], X, y, say=lines.append)


@pytest.mark.slow
def test_refit_members_on_dask_workers_match_in_process(result, one_thread):
    pytest.importorskip("distributed")
    out, X, y, _ = result
    members = [out.ensemble, out.ensemble]
    here = refit_members(members, X, y, say=lambda _: None)
    lines = []
    there = refit_members(members, X, y, dask_workers=2, say=lines.append)
    assert any(line.startswith("Dask: 2 workers") for line in lines)
    for a, b in zip(here, there):
        np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-6)
