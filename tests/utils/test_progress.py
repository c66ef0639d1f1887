"""Progress bars (tqdm on stderr): shown when forced on (KFKD_PROGRESS=1), silent when the
output is not a terminal (pytest's captured output is not), so logs and the other tests'
captured output stay as they were."""
import numpy as np
import pytest

from kfkd_kit import configs, data
from kfkd_kit.utils import progress
from kfkd_kit.commands.submit import predict_in_chunks
from kfkd_kit.search.selection import cross_validate_net
from kfkd_kit.data import write_kaggle_dataset


@pytest.fixture
def forced(monkeypatch):
    monkeypatch.setenv(progress.ENV, "1")


@pytest.fixture
def unforced(monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)


def test_bar_only_when_forced(monkeypatch, capsys):
    for value, shown in ((None, False), ("1", True), ("0", False)):
        if value is None:
            monkeypatch.delenv(progress.ENV, raising=False)
        else:
            monkeypatch.setenv(progress.ENV, value)
        with progress.bar(total=3, desc="step") as bar:
            bar.update(3)
        captured = capsys.readouterr()
        assert ("step" in captured.err) is shown and captured.out == ""


def test_not_a_terminal_means_no_bar(unforced, capsys):
    import sys
    assert not sys.stderr.isatty()
    bar = progress.bar(total=1)
    assert bar.disable
    bar.close()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("progress")
    write_kaggle_dataset(root, n_train=40, n_test=20, seed=4)
    return root


@pytest.mark.parametrize("force", [True, False])
def test_parser_bar(folder, monkeypatch, capsys, force):
    monkeypatch.setenv(progress.ENV, "1") if force else monkeypatch.delenv(progress.ENV, raising=False)
    training = data.load_training(folder)
    captured = capsys.readouterr()
    assert len(training.X) == 40
    assert ("parsing images" in captured.err) is force and captured.out == ""


@pytest.mark.parametrize("force", [True, False])
def test_predict_in_chunks(folder, monkeypatch, capsys, force, tiny_xy):
    X, y = tiny_xy
    model = configs.build("net1", epochs=1, device="cpu", precision="fp32", verbose=0)
    model.set_params(net__batch_size=16).fit(X, y)
    capsys.readouterr()
    monkeypatch.setenv(progress.ENV, "1") if force else monkeypatch.delenv(progress.ENV, raising=False)
    chunked = predict_in_chunks(model, X, chunk=32)   # whole batches: the same numbers
    captured = capsys.readouterr()
    np.testing.assert_array_equal(chunked, model.predict(X))
    assert ("predicting" in captured.err) is force and captured.out == ""


def test_cv_bar_over_fits_keeps_the_one_line_messages(monkeypatch, capsys, tiny_xy):
    X, y = tiny_xy
    estimator = configs.build("net1", epochs=1, device="cpu", precision="fp32", verbose=0)
    outputs = {}
    for force in (False, True):
        monkeypatch.setenv(progress.ENV, "1" if force else "")
        cross_validate_net(estimator, X, y, folds=2, name="net1")
        outputs[force] = capsys.readouterr()
    assert outputs[False].err == "" and "fits" not in outputs[False].out
    assert "fits:" in outputs[True].err and "/2 [" in outputs[True].err   # 2 fits in all
    lines = lambda out: [l.split(" (")[0] for l in out.splitlines()]   # noqa: E731 (times differ)
    assert lines(outputs[True].out) == lines(outputs[False].out)
    assert sum("fold" in l and "rmse" in l for l in outputs[True].out.splitlines()) == 2
