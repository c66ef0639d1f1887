"""Model files you can trust: the JSON's sha256, clear refusals through `kfkd submit`,
(issue 10)."""
import json
import shutil

import joblib
import numpy as np
import pytest

from kfkd_kit import configs, modelfile
from kfkd_kit.cli import main
from kfkd_kit.data import load_test, load_training
from kfkd_kit.synthetic import write_kaggle_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny data set and a net1 trained on it through the command line (joblib)."""
    root = tmp_path_factory.mktemp("modelfile")
    data = root / "data"
    write_kaggle_dataset(data, n_train=40, n_test=4, seed=1)
    model = root / "models" / "net1.joblib"
    assert main(["train", "--data", str(data), "--epochs", "1", "--device", "cpu", "--quiet",
                 "--model", str(model)]) == 0
    return data, model


def _copy(model, folder, name=None, with_json=True):
    """The model (and its JSON) copied into ``folder`` under ``name``."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or model.name)
    shutil.copyfile(model, target)
    if with_json:
        shutil.copyfile(modelfile.json_path(model), modelfile.json_path(target))
    return target


def _submit(data, model, out, *extra):
    return main(["submit", "--data", str(data), "--model", str(model), "--out-dir", str(out),
                 *extra])


def _refused(capsys, code, out):
    """Exit 2, one line on stderr, no submission written; returns that line."""
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    assert not out.exists() or not list(out.iterdir())
    return err[0]


def test_json_records_the_sha256_of_the_bytes_written(trained):
    _, model = trained
    record = json.loads(modelfile.json_path(model).read_text())["model_file"]
    assert record == {"file": "net1.joblib", "format": "joblib",
                      "bytes": model.stat().st_size, "sha256": modelfile.sha256_of(model)}


def test_submit_checks_the_sha256_and_writes_a_submission(trained, tmp_path, capsys):
    data, model = trained
    assert _submit(data, model, tmp_path / "subs") == 0
    assert len(list((tmp_path / "subs").glob("net1-*.csv"))) == 1


def test_a_changed_model_is_refused_and_trust_loads_it(trained, tmp_path, capsys):
    data, model = trained
    changed = _copy(model, tmp_path / "models")
    with open(changed, "ab") as f:        # still unpickles, but not the bytes saved
        f.write(b"\0")
    out = tmp_path / "subs"
    line = _refused(capsys, _submit(data, changed, out), out)
    assert line.startswith(f"kfkd submit: error: {changed}: sha256 ")
    assert "does not match" in line and "net1.json" in line and "--trust-model" in line
    assert _submit(data, changed, out, "--trust-model") == 0
    assert len(list(out.glob("net1-*.csv"))) == 1


def test_a_model_without_its_json_is_refused_unless_trusted(trained, tmp_path, capsys):
    data, model = trained
    stray = _copy(model, tmp_path / "elsewhere", with_json=False)
    out = tmp_path / "subs"
    line = _refused(capsys, _submit(data, stray, out), out)
    assert str(stray) in line and "no net1.json" in line and "--trust-model" in line
    assert "TRUST=1" in line
    assert _submit(data, stray, out, "--trust-model") == 0


@pytest.mark.parametrize("suffix", [".joblib"])
def test_a_csv_renamed_as_a_model_is_refused(trained, tmp_path, capsys, suffix):
    data, _ = trained
    fake = tmp_path / "models" / f"net1{suffix}"
    fake.parent.mkdir()
    shutil.copyfile(data / "test.csv", fake)
    out = tmp_path / "subs"
    line = _refused(capsys, _submit(data, fake, out), out)
    assert "no net1.json" in line                    # no record of it: refused unread
    line = _refused(capsys, _submit(data, fake, out, "--trust-model"), out)
    kind = suffix[1:]
    assert line.startswith(f"kfkd submit: error: {fake}: not a readable {kind} model file")


@pytest.mark.parametrize("suffix", [".joblib"])
def test_a_truncated_model_is_refused(trained, tmp_path, capsys, suffix):
    data, model = trained
    folder = tmp_path / "models"
    whole = _copy(model, folder)
    payload = whole.read_bytes()
    whole.write_bytes(payload[: len(payload) // 2])
    out = tmp_path / "subs"
    line = _refused(capsys, _submit(data, whole, out), out)
    assert "does not match" in line                  # the JSON's sha256 catches it first
    line = _refused(capsys, _submit(data, whole, out, "--trust-model"), out)
    assert f"{whole}: not a readable {suffix[1:]} model file" in line


def test_a_model_for_other_columns_is_refused_before_writing(trained, tmp_path, capsys):
    data, _ = trained
    training = load_training(data)
    rows = np.isfinite(training.y[:, :4]).all(axis=1)
    model = configs.build("net1", epochs=1, device="cpu", verbose=0, valid_fraction=0)
    model.set_params(net__module__n_outputs=4, net__complete_only=False)
    model.fit(training.X[rows], training.y[rows][:, :4])
    path, _ = modelfile.save_model(model, tmp_path / "models" / "eyes.joblib", {"net": "eyes"})
    out = tmp_path / "subs"
    line = _refused(capsys, _submit(data, path, out), out)
    assert f"{path}: predicts shape (1, 4) for one image, expected (1, 30)" in line


def test_submit_from_a_model_that_is_not_an_estimator_is_refused(trained, tmp_path, capsys):
    data, _ = trained
    path, _ = modelfile.save_model({"weights": [1, 2, 3]}, tmp_path / "models" / "d.joblib", {})
    out = tmp_path / "subs"
    line = _refused(capsys, _submit(data, path, out), out)
    assert f"{path}: holds a dict, not a fitted model" in line
