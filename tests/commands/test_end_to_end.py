"""train -> save -> joblib load -> submit, through the command line, on tiny synthetic data."""
import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from kfkd_kit.cli import main
from kfkd_kit.data import load_lookup, load_test
from kfkd_kit.data import write_kaggle_dataset

pytestmark = pytest.mark.slow   # every test here runs commands through the CLI


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    write_kaggle_dataset(root / "data", n_train=80, n_test=12, seed=1)
    model = root / "models" / "net1.joblib"
    assert main(["train", "--data", str(root / "data"), "--epochs", "3",
                 "--model", str(model), "--device", "cpu"]) == 0
    return root, model


def test_train_writes_model_json_and_figures(trained, capsys):
    root, model = trained
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["net"] == "net1" and meta["metrics"]["epochs_run"] == 3
    # one truth: the net's own choice of rows, recorded once
    assert meta["data"]["complete_only"] is True and meta["params"]["complete_only"] is True
    assert meta["data"]["rows"] == 80 and meta["data"]["rows_trained"] == 80 - round(0.7 * 80)
    assert meta["params"]["seed"] == 0 and meta["params"]["max_epochs"] == 3
    assert meta["metrics"]["valid_rmse_px"] > 0
    assert len(meta["data"]["fingerprint"]) >= 16 and "torch" in meta["versions"]
    for suffix in ("-learning-curves.png", "-test-predictions.png"):
        png = root / "models" / f"net1{suffix}"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_saved_model_predicts_pixels_after_joblib_load(trained):
    root, model = trained
    test = load_test(root / "data")
    prediction = joblib.load(model).predict(test.X)
    assert prediction.shape == (12, 30)
    assert 10 < np.median(prediction) < 86


def test_example_script_predicts_from_the_joblib_file_alone(trained, tmp_path):
    import runpy
    root, model = trained
    example = runpy.run_path(str(Path(__file__).parents[2] / "examples" / "predict_keypoints.py"))
    out = tmp_path / "kp.csv"
    example["main"](str(model), str(root / "data" / "test.csv"), str(out))
    table = pd.read_csv(out)
    assert list(table.columns[:3]) == ["ImageId", "left_eye_center_x", "left_eye_center_y"]
    assert len(table) == 12 and table.shape[1] == 31


def test_submit_writes_a_valid_kaggle_csv(trained, capsys):
    root, model = trained
    out = root / "subs"
    assert main(["submit", "--data", str(root / "data"), "--model", str(model),
                 "--out", str(out)]) == 0
    path = capsys.readouterr().out.strip().splitlines()[-1]
    assert path.startswith(str(out / "net1-")) and path.endswith("Z.csv")
    table = pd.read_csv(path)
    lookup = load_lookup(root / "data")
    assert table["RowId"].tolist() == lookup["RowId"].tolist()
    assert table["Location"].between(0, 96).all()


def test_missing_data_folder_falls_back_to_synthetic(tmp_path, monkeypatch, capsys):
    """`make train` on a fresh clone: no data/ at all -> built-in synthetic data, once."""
    monkeypatch.chdir(tmp_path)
    from kfkd_kit.data import synthetic_dataset
    calls = []
    monkeypatch.setattr(synthetic_dataset, "write_kaggle_dataset",
                        lambda folder, seed, **origin: calls.append((folder, origin)) or
                        write_kaggle_dataset(folder, n_train=40, n_test=4, seed=seed, **origin))
    assert main(["train", "--epochs", "1", "--quiet", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "no Kaggle training file in data/" in out
    assert [(str(c), o) for c, o in calls] == [("data/synthetic", {"pixel_origin": 0.5})]
    assert (tmp_path / "models" / "net1.joblib").is_file()
    # another pixel convention has a synthetic set of its own, its labels in that convention
    assert main(["train", "--epochs", "1", "--quiet", "--device", "cpu", "--pixel-origin", "1"]) == 0
    assert [(str(c), o) for c, o in calls[1:]] == [("data/synthetic-origin1", {"pixel_origin": 1.0})]


def test_bad_training_file_fails_cleanly(tmp_path, capsys):
    data = tmp_path / "data"
    write_kaggle_dataset(data, n_train=10, n_test=2, seed=0)
    lines = (data / "training.csv").read_text().splitlines()
    lines[3] = lines[3].rsplit(" ", 1)[0]  # drop the last pixel of data row 3
    (data / "training.csv").write_text("\n".join(lines) + "\n")
    model = tmp_path / "m.joblib"
    assert main(["train", "--data", str(data), "--epochs", "1", "--model", str(model)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "training.csv" in err and "row 3" in err and "Image" in err
    assert not model.exists()


def test_submit_without_model_is_a_clear_error(tmp_path, capsys):
    assert main(["submit", "--data", str(tmp_path), "--model", str(tmp_path / "none.joblib")]) == 2
    assert "no such model" in capsys.readouterr().err


def test_cv_keeps_an_ensemble_that_submit_accepts(trained, tmp_path, capsys):
    root, _ = trained
    ensemble = tmp_path / "net1-cv2.ensemble.joblib"
    assert main(["cv", "--data", str(root / "data"), "--epochs", "1", "--folds", "2",
                 "--device", "cpu", "--out", str(tmp_path / "cv"), "--keep-models",
                 "--model", str(ensemble)]) == 0
    out = capsys.readouterr().out
    assert "fold 2/2" in out and "px" in out
    assert len(list((tmp_path / "cv").glob("net1-*.csv"))) == 1
    assert main(["submit", "--data", str(root / "data"), "--model", str(ensemble),
                 "--out", str(tmp_path / "subs")]) == 0
    assert len(list((tmp_path / "subs").glob("net1-cv2.ensemble-*.csv"))) == 1


def test_grid_writes_results_heatmap_and_refit_model(trained, tmp_path, capsys):
    root, _ = trained
    model = tmp_path / "best.joblib"
    assert main(["grid", "--data", str(root / "data"), "--epochs", "1", "--folds", "2",
                 "--device", "cpu", "--lrs", "0.001,0.01", "--momenta", "0.9",
                 "--out", str(tmp_path / "cv"), "--refit", "--model", str(model)]) == 0
    assert "candidate 2/2" in capsys.readouterr().out
    produced = sorted(p.suffix for p in (tmp_path / "cv").iterdir())
    assert produced == [".csv", ".json", ".png"]
    assert model.is_file() and model.with_suffix(".json").is_file()


def test_specialists_train_pretrained_and_submit_with_tta(trained, tmp_path, capsys, monkeypatch):
    import dataclasses

    from kfkd_kit import configs
    root, base = trained  # the fixture's net1 pre-trains net1-shaped specialists (fast)
    monkeypatch.setitem(configs.CONFIGS, "specialists", dataclasses.replace(
        configs.CONFIGS["specialists"], specialist_net="net1"))
    model = tmp_path / "spec.joblib"
    assert main(["train", "--data", str(root / "data"), "--net", "specialists",
                 "--epochs", "2", "--model", str(model), "--base", str(base),
                 "--device", "cpu", "--quiet"]) == 0
    meta = json.loads(model.with_suffix(".json").read_text())
    assert set(meta["metrics"]["epochs_run"]) == {"eye_centers", "nose_tip", "mouth",
                                                  "bottom_lip", "eye_corners", "eyebrows"}
    assert meta["metrics"]["valid_rmse_px"] > 0 and meta["params"]["base"] == str(base)
    capsys.readouterr()
    assert main(["submit", "--data", str(root / "data"), "--model", str(model), "--tta",
                 "--out", str(tmp_path / "subs")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].split("/")[-1].startswith("spec-tta-")


def test_net8_trains_records_its_precision_and_its_cv_ensemble_submits_with_tta(
        trained, tmp_path, capsys):
    root, _ = trained
    data = str(root / "data")
    model = tmp_path / "net8.joblib"
    assert main(["train", "--data", data, "--net", "net8", "--epochs", "2", "--model", str(model),
                 "--device", "cpu", "--precision", "fp32", "--quiet"]) == 0
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["params"]["precision"] == "fp32" and meta["params"]["precision_used"] == "fp32"
    assert meta["params"]["optimizer"] == "AdamW" and meta["params"]["schedules"] == {"lr_schedule": "OneCycle"}
    assert meta["data"]["complete_only"] is False and meta["data"]["rows_trained"] == 80

    ensemble_path = tmp_path / "net8-cv2.ensemble.joblib"
    assert main(["cv", "--data", data, "--net", "net8", "--epochs", "1", "--folds", "2",
                 "--device", "cpu", "--out", str(tmp_path / "cv"), "--keep-models",
                 "--model", str(ensemble_path), "--precision", "bf16"]) == 0
    ensemble = joblib.load(ensemble_path)
    assert len(ensemble.estimators_) == 2
    assert all(e.named_steps["net"].precision_ == "bf16" for e in ensemble.estimators_)
    for tta in ([], ["--tta"]):
        assert main(["submit", "--data", data, "--model", str(ensemble_path),
                     "--out", str(tmp_path / "subs")] + tta) == 0
    plain, flipped = (pd.read_csv(p) for p in sorted((tmp_path / "subs").glob("net8-cv2*.csv"),
                                                     key=lambda p: "-tta" in p.name))
    assert list(plain.RowId) == list(flipped.RowId)
    assert not np.allclose(plain.Location, flipped.Location)   # the mirrored half counted


@pytest.mark.parametrize("net", ["specialists", "net5", "net8"])
def test_grid_over_nets_that_schedule_lr_is_refused_in_one_line(trained, net, capsys):
    root, _ = trained
    assert main(["grid", "--data", str(root / "data"), "--net", net, "--epochs", "1",
                 "--folds", "2", "--device", "cpu", "--out", str(root / "grid")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"kfkd grid: error: {net} sets lr/momentum")
    assert not (root / "grid").exists()


@pytest.mark.parametrize("epochs", ["0", "-2", "many"])
def test_epochs_must_be_a_positive_integer(epochs, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--epochs", epochs])
    assert exit_.value.code == 2 and "expected a positive integer" in capsys.readouterr().err


def test_cv_seed_settings_and_complete_rows_are_one_truth_in_its_json(trained, tmp_path):
    root, _ = trained
    assert main(["cv", "--data", str(root / "data"), "--net", "net1", "--epochs", "2",
                 "--folds", "2", "--seed", "4", "--device", "cpu", "--out", str(tmp_path)]) == 0
    summary = json.loads(next(tmp_path.glob("net1-*.json")).read_text())
    assert summary["seed"] == 4 and summary["params"]["seed"] == 4
    assert summary["params"]["complete_only"] is True and summary["data"]["complete_only"] is True
    assert summary["params"]["max_epochs"] == summary["epochs"] == 2
    assert summary["rows"] == 80   # all rows are split into folds; net1 trains on the complete ones


def test_submit_after_training_on_the_built_in_faces_names_their_folder(tmp_path, monkeypatch, capsys):
    """A fresh clone: make train used data/synthetic; make submit on data/ says where it is."""
    monkeypatch.chdir(tmp_path)
    write_kaggle_dataset(tmp_path / "data" / "synthetic", n_train=40, n_test=4, seed=2)
    assert main(["train", "--epochs", "1", "--quiet", "--device", "cpu"]) == 0
    assert main(["submit"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "DATA=data/synthetic" in err[0]
    assert not (tmp_path / "submissions").exists()      # refused before anything is written
    assert main(["submit", "--data", "data/synthetic"]) == 0
