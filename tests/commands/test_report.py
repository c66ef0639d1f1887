"""`kfkd report`: error analysis of a saved model on held-out rows, on tiny synthetic data."""
import base64
import re

import joblib
import numpy as np
import pandas as pd
import pytest

from kfkd_kit.commands import report
from kfkd_kit.search import analysis
from kfkd_kit.cli import main
from kfkd_kit.data import load_training
from kfkd_kit.keypoints import KEYPOINTS
from kfkd_kit.data import write_kaggle_dataset


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    write_kaggle_dataset(root / "data", n_train=90, n_test=4, seed=2)
    model = root / "models" / "net1.joblib"
    assert main(["train", "--data", str(root / "data"), "--epochs", "1", "--model", str(model),
                 "--device", "cpu", "--quiet"]) == 0
    return root, model


def _run(args, capsys):
    code = main(["report", *args])
    out = capsys.readouterr()
    return code, out.out.strip().splitlines(), out.err


@pytest.fixture(scope="module")
def written(made, tmp_path_factory):
    root, model = made
    out_dir = tmp_path_factory.mktemp("reports")
    path = report.run_report(model, data_dir=root / "data", out_dir=out_dir, say=lambda *_: None)
    return root, model, path


def _by_hand(model_path, data_dir):
    """The held-out rows (the net's validation split, plus the rows net1 never trained on)
    and the true and predicted pixels there, computed here without report.py."""
    from kfkd_kit import configs
    from kfkd_kit.data import splits
    model = joblib.load(model_path)
    training = load_training(data_dir)
    X, y = training.X, training.y
    net = configs.inner_net(model)
    valid = net.validation_rows(X, y)
    trained = np.setdiff1d(net.fit_rows(y), valid)
    groups = splits.image_groups(X)
    rows = np.array([i for i in range(len(X)) if groups[i] not in set(groups[trained])])
    assert set(valid) <= set(rows)
    return rows, y[rows].astype(np.float64), model.predict(X[rows]).astype(np.float64)


@pytest.mark.slow
def test_cli_prints_the_html_path_last_and_the_page_embeds_every_figure(made, tmp_path, capsys):
    root, model = made
    code, lines, _ = _run(["--data", str(root / "data"), "--model", str(model),
                           "--out", str(tmp_path)], capsys)
    assert code == 0
    page = tmp_path / lines[-1].split(str(tmp_path) + "/", 1)[1]
    assert page.name == "report.html" and page.parent.parent == tmp_path
    assert re.fullmatch(r"net1-\d{8}T\d{6}Z", page.parent.name)
    text = page.read_text()
    pngs = sorted(p.name for p in page.parent.glob("*.png"))
    assert pngs == ["keypoint-rmse.png", "learning-curves.png", "worst-faces.png"]
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert sorted(base64.b64decode(e) for e in embedded) == sorted(
        (page.parent / p).read_bytes() for p in pngs)
    assert "src=\"file:" not in text and "<table>" in text
    assert not list(tmp_path.rglob(".*.tmp"))          # atomic writes left nothing behind


@pytest.mark.slow
def test_keypoint_table_is_masked_rmse_on_the_held_out_rows(written):
    root, model, path = written
    rows, true, predicted = _by_hand(model, root / "data")
    table = pd.read_csv(path.parent / "keypoints.csv")
    assert table["keypoint"].tolist() == [*KEYPOINTS, "all"]
    text = path.read_text()
    for k, name in enumerate(KEYPOINTS):
        t, p = true[:, 2 * k:2 * k + 2], predicted[:, 2 * k:2 * k + 2]
        ok = np.isfinite(t)
        by_hand = [np.sqrt(np.mean((t[ok[:, a], a] - p[ok[:, a], a]) ** 2)) for a in (0, 1)]
        both = np.sqrt(np.mean((t[ok] - p[ok]) ** 2))
        row = table.iloc[k]
        assert row["rmse_x_px"] == pytest.approx(by_hand[0], rel=1e-6)
        assert row["rmse_y_px"] == pytest.approx(by_hand[1], rel=1e-6)
        assert row["rmse_px"] == pytest.approx(both, rel=1e-6)
        assert row["labelled_values"] == ok.sum()
        assert f"<td>{name}</td><td class=\"num\">{by_hand[0]:.3f}</td>" in text
    ok = np.isfinite(true)
    assert table.iloc[-1]["rmse_px"] == pytest.approx(
        np.sqrt(np.mean((true[ok] - predicted[ok]) ** 2)), rel=1e-6)
    # the net's own validation split is the part of net1's complete rows it held out
    complete = ok.all(axis=1)
    assert 0 < complete.sum() < len(rows)


@pytest.mark.slow
def test_the_worst_16_are_the_16_highest_per_face_rmses(written):
    root, model, path = written
    rows, true, predicted = _by_hand(model, root / "data")
    faces = np.array([np.sqrt(np.mean((t[np.isfinite(t)] - p[np.isfinite(t)]) ** 2))
                      for t, p in zip(true, predicted)])
    worst = pd.read_csv(path.parent / "worst-faces.csv")
    assert len(worst) == 16 and worst["rank"].tolist() == list(range(1, 17))
    assert set(worst["row"]) == set(rows[np.argsort(-faces)[:16]])
    assert np.all(np.diff(worst["rmse_px"]) <= 0)
    assert worst["rmse_px"].min() >= np.sort(faces)[-16]
    np.testing.assert_allclose(worst["rmse_px"], np.sort(faces)[::-1][:16], rtol=1e-6)


def test_worst_faces_ignores_faces_with_no_label():
    assert analysis.worst_faces([1.0, np.nan, 3.0, 2.0], n=16).tolist() == [2, 3, 0]


@pytest.mark.slow
def test_holdout_option_scores_a_grouped_holdout_and_says_the_rows_may_be_trained_on(
        made, tmp_path, capsys):
    root, model = made
    code, lines, _ = _run(["--data", str(root / "data"), "--model", str(model), "--holdout",
                           "--out", str(tmp_path)], capsys)
    assert code == 0 and lines[-1].endswith("report.html")
    assert "grouped hold-out of 20%" in lines[0]
    assert any(line.startswith("NOTE:") and "training part" in line for line in lines)


@pytest.mark.slow
def test_a_fold_ensemble_uses_a_holdout_with_a_note(made, tmp_path):
    from kfkd_kit.meta.ensemble import FoldEnsemble
    root, model = made
    ensemble = FoldEnsemble.from_fitted([joblib.load(model)] * 2)
    training = load_training(root / "data")
    said = []
    path = report.make_report(ensemble, tmp_path / "ens.joblib", training,
                              out_dir=tmp_path, say=said.append)
    assert any("may have been trained on" in line for line in said)
    assert (path.parent / "learning-curves.png").is_file()
    assert "may have been trained on" in path.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["missing", "tampered"])
def test_a_bad_model_is_one_line_exit_2_and_no_report(made, tmp_path, capsys, kind):
    root, model = made
    if kind == "missing":
        path = tmp_path / "nope.joblib"
    else:
        path = tmp_path / "net1.joblib"
        path.write_bytes(model.read_bytes() + b"x")
        path.with_suffix(".json").write_text(model.with_suffix(".json").read_text())
    out_dir = tmp_path / "reports"
    code, lines, err = _run(["--data", str(root / "data"), "--model", str(path),
                             "--out", str(out_dir)], capsys)
    assert code == 2 and lines == []
    assert len(err.strip().splitlines()) == 1 and err.startswith("kfkd report: error:")
    assert str(path) in err
    assert not out_dir.exists()
