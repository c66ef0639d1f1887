"""`kfkd compare`: the saved models side by side (kfkd_kit.commands.compare), with two tiny trained models."""
import json
import shutil

import pandas as pd
import pytest

from kfkd_kit.cli import main
from kfkd_kit.commands.compare import compare_models
from kfkd_kit.data import write_kaggle_dataset

pytestmark = pytest.mark.slow   # every test here uses models trained through the CLI


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    write_kaggle_dataset(root / "data", n_train=60, n_test=4, seed=3)
    folder = root / "models"
    for name, epochs in (("net1", "3"), ("net2", "1")):
        assert main(["train", "--data", str(root / "data"), "--net", name, "--epochs", epochs,
                     "--device", "cpu", "--precision", "fp32", "--quiet",
                     "--model", str(folder / f"{name}.joblib")]) == 0
    return folder


def _meta(folder, name):
    return json.loads((folder / f"{name}.json").read_text())


def test_table_sorted_by_validation_rmse_with_sha256_checked(models):
    table = compare_models(models)
    assert list(table["file"]) == sorted(["net1.joblib", "net2.joblib"],
                                         key=lambda f: _meta(models, f[:4])["metrics"]["valid_rmse_px"])
    for row in table.to_dict("records"):
        meta = _meta(models, row["net"])
        assert row["epochs"] == meta["metrics"]["epochs_run"]
        assert row["valid RMSE px"] == f"{meta['metrics']['valid_rmse_px']:.3f}"
        assert row["data"] == meta["data"]["fingerprint"][:8]
        assert row["sha256"] == "ok" and row["train time"].endswith(" s")


def test_models_without_json_and_changed_files_are_listed(models, tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(models, folder)
    shutil.copy(folder / "net1.joblib", folder / "stray.joblib")           # no JSON
    with open(folder / "net2.joblib", "ab") as f:                          # bytes changed
        f.write(b"x")
    (folder / "net1.joblib").unlink()                                      # JSON, no model
    rows = {r["file"]: r for r in compare_models(folder).to_dict("records")}
    assert rows["stray.joblib"]["sha256"] == "no JSON" and pd.isna(rows["stray.joblib"]["net"])
    assert rows["net2.joblib"]["sha256"] == "MISMATCH"
    assert rows["net1.joblib"]["sha256"] == "missing file"
    assert list(compare_models(folder)["file"])[-1] == "stray.joblib"     # no RMSE: last


def test_command_prints_a_markdown_table(models, capsys):
    assert main(["compare", "--models-dir", str(models)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| net") and "net1.joblib" in out and "net2.joblib" in out
    assert main(["compare", "--models-dir", str(models / "nowhere")]) == 2
