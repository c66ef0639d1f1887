"""Model files you can trust: the JSON's sha256, clear refusals through `kfkd submit`,
and the pickle-free .skops format."""
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import torch

from kfkd_kit import configs
from kfkd_kit.utils import modelfile, skopsfile
from kfkd_kit.cli import main
from kfkd_kit.data import load_test, load_training
from kfkd_kit.data import write_kaggle_dataset

pytestmark = pytest.mark.slow   # every test here uses the net1 `trained` through the CLI


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
    return main(["submit", "--data", str(data), "--model", str(model), "--out", str(out),
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
    assert "does not match" in line and "net1.json" in line and "--trust" in line
    assert _submit(data, changed, out, "--trust") == 0
    assert len(list(out.glob("net1-*.csv"))) == 1


def test_a_model_without_its_json_is_refused_unless_trusted(trained, tmp_path, capsys):
    data, model = trained
    stray = _copy(model, tmp_path / "elsewhere", with_json=False)
    out = tmp_path / "subs"
    line = _refused(capsys, _submit(data, stray, out), out)
    assert str(stray) in line and "no net1.json" in line and "--trust" in line
    assert "TRUST=1" in line
    assert _submit(data, stray, out, "--trust") == 0


def test_a_json_of_another_model_with_the_same_stem_is_refused(trained, tmp_path, capsys):
    data, model = trained
    folder = tmp_path / "models"
    joblib_model = _copy(model, folder)
    modelfile.save_model(modelfile.load_model(model), folder / "net1.skops", {"net": "net1"})
    out = tmp_path / "subs"
    line = _refused(capsys, _submit(data, joblib_model, out), out)
    assert "net1.json describes net1.skops, not net1.joblib" in line


@pytest.mark.parametrize("suffix", [".joblib", ".skops"])
def test_a_csv_renamed_as_a_model_is_refused(trained, tmp_path, capsys, suffix):
    data, _ = trained
    fake = tmp_path / "models" / f"net1{suffix}"
    fake.parent.mkdir()
    shutil.copyfile(data / "test.csv", fake)
    out = tmp_path / "subs"
    line = _refused(capsys, _submit(data, fake, out), out)
    assert "no net1.json" in line                    # no record of it: refused unread
    line = _refused(capsys, _submit(data, fake, out, "--trust"), out)
    kind = suffix[1:]
    assert line.startswith(f"kfkd submit: error: {fake}: not a readable {kind} model file")


@pytest.mark.parametrize("suffix", [".joblib", ".skops"])
def test_a_truncated_model_is_refused(trained, tmp_path, capsys, suffix):
    data, model = trained
    folder = tmp_path / "models"
    if suffix == ".joblib":
        whole = _copy(model, folder)
    else:
        whole, _ = modelfile.save_model(modelfile.load_model(model), folder / "net1.skops", {})
    payload = whole.read_bytes()
    whole.write_bytes(payload[: len(payload) // 2])
    out = tmp_path / "subs"
    line = _refused(capsys, _submit(data, whole, out), out)
    assert "does not match" in line                  # the JSON's sha256 catches it first
    line = _refused(capsys, _submit(data, whole, out, "--trust"), out)
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


# --------------------------------------------------------------------------- .skops


@pytest.fixture(scope="module")
def fitted(trained):
    """net1 and net8, each fitted for one epoch on the tiny data."""
    data, _ = trained
    training = load_training(data)
    models = {}
    for name in ("net1", "net8"):
        model = configs.build(name, epochs=1, device="cpu", verbose=0, precision="fp32")
        models[name] = model.fit(training.X, training.y)
    return models


@pytest.mark.parametrize("name", ["net1", "net8"])
def test_skops_round_trip_predicts_identically(trained, fitted, tmp_path, name):
    data, _ = trained
    model = fitted[name]
    path, meta = modelfile.save_model(model, tmp_path / f"{name}.skops", {"net": name})
    record = json.loads(meta.read_text())["model_file"]
    assert record["format"] == "skops" and record["sha256"] == modelfile.sha256_of(path)
    # pickle-free: nothing in the file but the types load_model trusts
    assert set(sio.get_untrusted_types(file=path)) <= set(modelfile.TRUSTED_TYPES)
    loaded = modelfile.load_model(path)
    X = load_test(data).X
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    before, after = model.named_steps["net"], loaded.named_steps["net"]
    assert type(after.module_) is type(before.module_)
    for key, value in before.module_.state_dict().items():   # weights and batch-norm buffers
        assert torch.equal(after.module_.state_dict()[key], value), key
    assert after.history[-1, "valid_loss"] == before.history[-1, "valid_loss"]
    assert after.precision_ == before.precision_ and after.get_params()["seed"] == 0
    saved_state = before.optimizer_.state_dict()["state"]
    for index, state in after.optimizer_.state_dict()["state"].items():
        for key, value in state.items():
            assert torch.equal(value, saved_state[index][key])


def _round_trip(model, path, X):
    """``model`` saved as .skops at ``path`` and loaded back, checked to predict exactly as
    it did; the loaded model."""
    saved, _ = modelfile.save_model(model, path, {"net": path.stem})
    assert set(sio.get_untrusted_types(file=saved)) <= set(modelfile.TRUSTED_TYPES)
    loaded = modelfile.load_model(saved)
    assert type(loaded) is type(model) and loaded is not model
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))   # NaN where NaN
    return loaded


@pytest.mark.parametrize("name", ["net1", "net8"])
def test_skops_round_trip_of_flip_tta_keeps_the_mirror_axis(trained, fitted, tmp_path, name):
    from sklearn.frozen import FrozenEstimator

    from kfkd_kit.net.estimator import flip_axis_of
    from kfkd_kit.meta.tta import FlipTTA, flip_tta
    training = load_training(trained[0])
    model = flip_tta(fitted[name])
    assert flip_axis_of(model.estimator_) != 48.5     # measured, so a lost axis would show
    loaded = _round_trip(model, tmp_path / f"{name}-tta.skops", training.X)
    assert isinstance(loaded, FlipTTA) and isinstance(loaded.estimator_, FrozenEstimator)
    assert flip_axis_of(loaded.estimator_) == flip_axis_of(model.estimator_)


def test_skops_round_trip_of_a_cross_validations_fold_ensemble(trained, tmp_path):
    from kfkd_kit.search import selection
    from kfkd_kit.meta.ensemble import FoldEnsemble
    training = load_training(trained[0])
    estimator = configs.build("net1", epochs=1, device="cpu", verbose=0, precision="fp32")
    result = selection.cross_validate_net(estimator, training.X, training.y, folds=2,
                                          keep_models=True, say=lambda *a: None)
    model = result.ensemble
    loaded = _round_trip(model, tmp_path / "net1-cv2.ensemble.skops", training.X)
    assert isinstance(loaded, FoldEnsemble) and len(loaded.estimators_) == 2
    for (train, test), (train_after, test_after) in zip(model.folds_, loaded.folds_):
        assert np.array_equal(train, train_after) and np.array_equal(test, test_after)
    np.testing.assert_array_equal(loaded.predict_each(training.X), model.predict_each(training.X))


def test_skops_round_trip_of_a_seed_ensemble(trained, tmp_path):
    from kfkd_kit.meta.ensemble import SeedEnsemble
    training = load_training(trained[0])
    template = configs.build("net1", epochs=1, device="cpu", verbose=0, precision="fp32", seed=2)
    model = SeedEnsemble(template, seeds=2, n_jobs=1).fit(training.X, training.y)
    loaded = _round_trip(model, tmp_path / "net1-x2.skops", training.X)
    assert isinstance(loaded, SeedEnsemble) and loaded.seeds_ == [2, 3]
    np.testing.assert_array_equal(loaded.predict_each(training.X), model.predict_each(training.X))


def test_skops_round_trip_of_the_specialists(trained, tmp_path):
    from kfkd_kit.meta.specialists import Specialists
    training = load_training(trained[0])
    model = configs.build("specialists", epochs=1, device="cpu", verbose=0, precision="fp32")
    model.set_params(estimator__net__module__filters=(4, 4, 4), estimator__net__module__dense=(8, 8))
    model.fit(training.X, training.y)
    loaded = _round_trip(model, tmp_path / "specialists.skops", training.X)
    assert isinstance(loaded, Specialists) and list(loaded.models_) == list(model.models_)
    assert loaded.columns_ == model.columns_
    assert all(np.array_equal(loaded.rows_[k], model.rows_[k]) for k in model.rows_)


def test_skops_round_trip_of_a_net_pretrained_from_a_frozen_base(trained, fitted, tmp_path):
    from sklearn.frozen import FrozenEstimator
    training = load_training(trained[0])
    base = FrozenEstimator(fitted["net1"])
    model = configs.build("net1", epochs=1, device="cpu", verbose=0, precision="fp32", seed=5,
                          base=base).fit(training.X, training.y)
    loaded = _round_trip(model, tmp_path / "net1-from-net1.skops", training.X)
    source = dict(loaded.named_steps["net"].callbacks)["pretrained"].source
    assert isinstance(source, FrozenEstimator)        # the base is stored with it, frozen
    np.testing.assert_array_equal(source.predict(training.X), base.predict(training.X))


def test_train_and_submit_with_a_skops_model(trained, tmp_path, capsys):
    data, _ = trained
    model = tmp_path / "models" / "net1.skops"
    assert main(["train", "--data", str(data), "--epochs", "1", "--device", "cpu", "--quiet",
                 "--model", str(model)]) == 0
    assert model.read_bytes()[:2] == b"PK"                       # a skops zip, not a pickle
    assert json.loads(modelfile.json_path(model).read_text())["model_file"]["format"] == "skops"
    assert _submit(data, model, tmp_path / "subs", "--tta") == 0
    assert len(list((tmp_path / "subs").glob("net1-tta-*.csv"))) == 1
    # --tta-shift implies --tta; its submission is named apart and differs from flip alone
    assert _submit(data, model, tmp_path / "subs", "--tta-shift", "2") == 0
    flip, = (tmp_path / "subs").glob("net1-tta-2*.csv")
    shifted, = (tmp_path / "subs").glob("net1-tta-shift2-*.csv")
    flip, shifted = (pd.read_csv(p)["Location"].to_numpy() for p in (flip, shifted))
    assert flip.shape == shifted.shape and not np.allclose(flip, shifted)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:                  # argparse's one-line error
        _submit(data, model, tmp_path / "refused", "--tta-shift", "1.5")
    line = _refused(capsys, stop.value.code, tmp_path / "refused")
    assert "--tta-shift" in line and "whole number of pixels" in line


def _skops_with(tmp_path, estimator_node):
    """A .skops file in kfkd_kit's layout holding ``estimator_node``, with a JSON whose
    sha256 matches it (so only the type check stands in the way)."""
    path = tmp_path / "models" / "evil.skops"
    path.parent.mkdir(parents=True, exist_ok=True)
    sio.dump({"format": skopsfile.SKOPS_FORMAT, "estimator": estimator_node}, path)
    record = {"file": path.name, "format": "skops", "sha256": modelfile.sha256_of(path)}
    modelfile.json_path(path).write_text(json.dumps({"model_file": record}))
    return path


def test_a_skops_file_with_an_untrusted_type_is_refused(trained, fitted, tmp_path, capsys):
    data, _ = trained
    node = skopsfile._encode(fitted["net1"])
    node["params"]["memory"] = os.system            # a function it must never call or import
    path = _skops_with(tmp_path, node)
    out = tmp_path / "subs"
    for trust in ([], ["--trust"]):             # trusting its bytes trusts no new types
        line = _refused(capsys, _submit(data, path, out, *trust), out)
        assert line.startswith(f"kfkd submit: error: {path}: refused, it names types")
        assert f"{os.system.__module__}.system" in line


def test_an_estimator_holding_an_untrusted_type_is_not_saved_as_skops(fitted, tmp_path):
    import pathlib
    model = fitted["net1"]
    scaler = model.named_steps["pixels"]
    scaler.note_ = pathlib.PurePosixPath("x")
    try:
        with pytest.raises(ValueError, match="PurePosixPath, which load_model does not trust"):
            modelfile.save_model(model, tmp_path / "n.skops", {})
    finally:
        del scaler.note_
    assert not list(tmp_path.iterdir())
