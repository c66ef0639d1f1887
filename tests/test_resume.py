"""Interrupted training: kill -9 and resume, Ctrl-C keeps the best model so far; both
for real, in a subprocess running the command line."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import pytest

from kfkd_kit import runs
from kfkd_kit.cli import main
from kfkd_kit.synthetic import write_kaggle_dataset

pytestmark = pytest.mark.slow   # runs of the CLI, in-process and killed subprocesses

EPOCHS = 600   # a few ms each: checkpoints are written every few tenths of a second


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    write_kaggle_dataset(root / "data", n_train=120, n_test=4, seed=5)
    return root


def _command(folder, model, net="net1", epochs=EPOCHS):
    return [sys.executable, "-m", "kfkd_kit", "train", "--data", str(folder / "data"),
            "--net", net, "--epochs", str(epochs), "--device", "cpu", "--quiet",
            "--model", str(model)]


def _start_and_wait(command, pointer, epoch):
    """Start the command; return the process once its last checkpoint reached ``epoch``."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if json.loads(pointer.read_text())["epoch"] >= epoch:
                return process
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    process.kill()
    pytest.fail(f"no checkpoint at epoch {epoch}: {process.communicate()[0][-500:]}")


def test_kill_9_then_the_same_command_resumes_and_ends_with_all_epochs(folder):
    model = folder / "killed" / "net1.joblib"
    run_dir = Path(f"{model}.run")
    command = _command(folder, model)
    process = _start_and_wait(command, run_dir / "last.json", 20)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stopped = json.loads((run_dir / "last.json").read_text())["epoch"]
    assert 20 <= stopped < EPOCHS and not model.exists()
    out = subprocess.run(command, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1])))
    assert out.returncode == 0, out.stderr
    assert f"resuming from epoch {stopped} of {EPOCHS}" in out.stdout
    net = joblib.load(model).named_steps["net"]
    assert len(net.history) == EPOCHS and [row["epoch"] for row in net.history] == list(range(1, EPOCHS + 1))
    assert not run_dir.exists()                       # finished: checkpoints removed
    assert all(name != "checkpoint_last" for name, _ in net.callbacks)


def test_ctrl_c_saves_the_best_model_so_far_and_says_where(folder):
    model = folder / "stopped" / "net1.joblib"
    run_dir = Path(f"{model}.run")
    process = _start_and_wait(_command(folder, model), run_dir / "last.json", 15)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 130, out
    assert f"best model so far" in out and str(model) in out
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["metrics"]["interrupted"] is True
    best = runs.best_state(run_dir)
    history = joblib.load(model).named_steps["net"].history
    assert best is not None and len(history) == best.use_saved()   # the best epoch's state
    assert history[-1, "valid_loss_best"] is True


def test_a_run_folder_of_other_settings_is_not_resumed(folder, capsys):
    model = folder / "other" / "net1.joblib"
    run_dir = Path(f"{model}.run")
    runs.prepare(run_dir, {"net": "net1", "settings": {"seed": 99}, "data": "x"})
    assert main(["train", "--data", str(folder / "data"), "--epochs", "2", "--device", "cpu",
                 "--quiet", "--model", str(model)]) == 0
    out = capsys.readouterr().out
    assert "other settings or data" in out and "resuming" not in out
    assert len(joblib.load(model).named_steps["net"].history) == 2


def test_slot_checkpoint_keeps_the_previous_one_whole_when_a_save_fails(tmp_path, monkeypatch):
    from kfkd_kit import configs
    import numpy as np
    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 256, (30, 9216), dtype=np.uint8), rng.uniform(20, 70, (30, 30))
    checkpoint = runs.SlotCheckpoint(tmp_path, "last")
    pipe = configs.build("net1", epochs=2, device="cpu", verbose=0, complete_only=False)
    net = pipe.named_steps["net"]
    pipe.set_params(net__callbacks=list(net.callbacks) + [("cp", checkpoint)]).fit(X, y)
    assert checkpoint.saved()["epoch"] == 2
    before = json.loads(checkpoint.pointer.read_text())
    kept = (tmp_path / before["slot"] / "params.pt").read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(runs.torch, "save", broken)
    checkpoint.save_model(net, force=True)
    with pytest.warns(RuntimeWarning, match="disk full"):
        checkpoint.wait()
    assert json.loads(checkpoint.pointer.read_text()) == before   # still the whole epoch-2 one
    assert (tmp_path / before["slot"] / "params.pt").read_bytes() == kept
    best = runs.best_state(tmp_path)
    assert best is not None and 1 <= best.use_saved() <= 2
    assert not (tmp_path / best.saved()["slot"] / "optimizer.pt").exists()  # for using only


def test_same_seed_trains_the_same_model_twice_and_records_it(folder, tmp_path):
    import numpy as np
    from kfkd_kit.data import load_test
    test = load_test(folder / "data")
    predictions = []
    for run in ("a", "b"):
        model = tmp_path / run / "net3.joblib"
        assert main(["train", "--data", str(folder / "data"), "--net", "net3", "--epochs", "2",
                     "--seed", "7", "--device", "cpu", "--quiet", "--model", str(model)]) == 0
        predictions.append(joblib.load(model).predict(test.X))
        assert json.loads(model.with_suffix(".json").read_text())["params"]["seed"] == 7
    np.testing.assert_array_equal(predictions[0], predictions[1])
