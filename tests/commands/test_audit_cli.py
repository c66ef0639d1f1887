"""`kfkd audit` through the CLI on a tiny synthetic folder: the page with its faces, the CSVs,
the cleaned training file and its log; an input file as --clean is one line and exit 2,
with nothing written; with --oof, a cv run's out-of-fold residuals on the page and in CSVs,
and a run of other data refused in one line."""
import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from kfkd_kit.cli import main
from kfkd_kit.data import load_training, write_kaggle_dataset
from kfkd_kit.keypoints import FEATURE_NAMES
from kfkd_kit.search.oof import folds_sha256


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    paths = write_kaggle_dataset(root / "data", n_train=80, n_test=6, seed=3)
    # plant an exact duplicate whose labels agree, and a blank image, in the file itself
    lines = paths["training"].read_bytes().split(b"\n")
    lines[5] = lines[2]                                   # row 4 (0-based) = row 1
    fields = lines[8].split(b",")
    lines[8] = b",".join(fields[:-1] + [b" ".join([b"128"] * 9216)])   # row 7 blank
    paths["training"].write_bytes(b"\n".join(lines))
    return root


@pytest.mark.slow
def test_cli_writes_the_page_the_clean_file_and_its_log(folder, capsys):
    clean = folder / "out" / "clean.csv"
    assert main(["audit", "--data", str(folder / "data"), "--out", str(folder / "reports"),
                 "--clean", str(clean)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    page = out[-1]
    assert page.endswith("audit.html") and "exact duplicate groups: 1" in out
    text = open(page, encoding="utf-8").read()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) >= 2                                # the duplicate and the blank face
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    before, after = load_training(folder / "data"), load_training(clean)
    log = pd.read_csv(folder / "out" / "clean-changes.csv", keep_default_na=False)
    dropped = sorted(log.loc[log["column"] == "", "row"])
    assert dropped == [4, 7]                               # the copy and the blank image
    keep = np.setdiff1d(np.arange(len(before.X)), dropped)
    edited = set(log.loc[log["column"] != "", "row"])
    same = np.array([r not in edited for r in keep])
    assert (after.X == before.X[keep]).all()
    np.testing.assert_array_equal(after.y[same], before.y[keep][same])


def test_an_input_file_as_clean_is_refused_and_nothing_is_written(folder, capsys):
    training = folder / "data" / "training.csv"
    before = training.read_bytes()
    code = main(["audit", "--data", str(folder / "data"), "--out", str(folder / "refused"),
                 "--clean", str(training)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is an input file" in err[0]
    assert training.read_bytes() == before and not (folder / "refused").exists()


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A folder whose row 2 has its eye centres swapped and row 6 its lower lip 35 px off."""
    root = tmp_path_factory.mktemp("audit-oof")
    paths = write_kaggle_dataset(root / "data", n_train=80, n_test=6, seed=5)
    table = pd.read_csv(paths["training"])
    complete = table.index[table.notna().all(axis=1)]
    a, b = int(complete[2]), int(complete[6])
    for axis in ("x", "y"):
        left, right = f"left_eye_center_{axis}", f"right_eye_center_{axis}"
        table.loc[a, [left, right]] = table.loc[a, [right, left]].to_numpy()
    table.loc[b, "mouth_center_bottom_lip_y"] = 95.0 if \
        table.loc[b, "mouth_center_bottom_lip_y"] < 60 else 20.0
    table.to_csv(paths["training"], index=False)
    return root, a, b


@pytest.mark.slow
def test_cli_audits_against_a_cv_runs_out_of_fold_predictions(planted, capsys):
    root, swapped, displaced = planted
    cv = root / "cv"
    assert main(["cv", "--data", str(root / "data"), "--net", "net1", "--epochs", "2",
                 "--folds", "2", "--device", "cpu", "--out", str(cv)]) == 0
    [record] = cv.glob("oof-*.json")
    run = cv / record.stem.removeprefix("oof-")             # cv/<net>-<time>, as stack takes
    capsys.readouterr()
    assert main(["audit", "--data", str(root / "data"), "--out", str(root / "reports"),
                 "--oof", str(run), "--clean", str(root / "clean.csv")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    page = out[-1]
    assert "pairs that fit the out-of-fold prediction better swapped: 1" in out
    [audit_dir] = (root / "reports").iterdir()
    labels = pd.read_csv(audit_dir / "oof-labels.csv")
    found = set(zip(labels["row"], labels["keypoint"].str.split().str[0], labels["check"]))
    assert (swapped, "left_eye_center", "swapped") in found
    assert (displaced, "mouth_center_bottom_lip", "residual") in found
    keypoints = pd.read_csv(audit_dir / "oof-keypoints.csv")
    assert len(keypoints) == 15 and (keypoints["labelled"] > 0).all()
    assert (audit_dir / "oof-residuals.png").is_file()
    text = open(page, encoding="utf-8").read()
    assert "Labels far from the out-of-fold prediction" in text and record.stem[4:] in text
    assert len(re.findall(r'src="data:image/png;base64,', text)) >= 2
    log = pd.read_csv(root / "clean-changes.csv", keep_default_na=False)
    lip = log[(log["row"] == displaced) & log["column"].str.startswith("mouth_center_bottom")]
    assert len(lip) == 2 and (lip["new"] == "").all()
    assert lip["reason"].str.contains("out-of-fold prediction").all()


def test_an_oof_run_of_other_data_is_refused_and_nothing_is_written(folder, tmp_path, capsys):
    train = pd.DataFrame({"RowIndex": [0, 1], "fold": [1, 2],
                          **{c: [40.0, 41.0] for c in FEATURE_NAMES}})
    train.to_csv(tmp_path / "oof-net1-x.csv", index=False)
    record = {"kind": "oof", "run": "net1-x", "folds": 2, "rows": 2,
              "folds_sha256": folds_sha256(np.array([1, 2])), "data": {"fingerprint": "0" * 16},
              "files": {"train": "oof-net1-x.csv", "test": None}}
    (tmp_path / "oof-net1-x.json").write_text(json.dumps(record))
    code = main(["audit", "--data", str(folder / "data"), "--out", str(tmp_path / "reports"),
                 "--oof", str(tmp_path / "oof-net1-x.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "oof-net1-x.json: its data (fingerprint 0000" in err[0]
    assert not (tmp_path / "reports").exists()


@pytest.mark.slow
def test_find_faces_reports_the_images_without_one_and_cleans_none_of_them(folder, capsys):
    import importlib.util
    if importlib.util.find_spec("facenet_pytorch") is None:
        pytest.skip("facenet-pytorch (MTCNN) is not installed")
    clean = folder / "faces" / "clean.csv"
    assert main(["audit", "--data", str(folder / "data"), "--out", str(folder / "faces"),
                 "--clean", str(clean), "--find-faces"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    found = [line for line in out if line.startswith("training images where no face is found: ")]
    assert found and "test images where no face is found: " in "\n".join(out)
    table = pd.read_csv(next((folder / "faces").glob("audit-*/no-face.csv")))
    detector = table[table["check"] == "detector"]
    assert len(detector) == int(found[0].rsplit(" ", 1)[1]) + (detector["file"] == "test").sum()
    assert 7 not in set(detector.loc[detector["file"] == "training", "row"])   # blank: reported once
    log = pd.read_csv(folder / "faces" / "clean-changes.csv", keep_default_na=False)
    assert sorted(log.loc[log["column"] == "", "row"]) == [4, 7]    # no row dropped for it
