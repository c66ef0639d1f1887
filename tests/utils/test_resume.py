"""Interrupted training: kill -9 and resume, Ctrl-C keeps the best model so far; both
for real, in a subprocess running the command line."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import joblib
import pytest
from skorch.callbacks import Callback

from kfkd_kit.utils import runs
from kfkd_kit.cli import main
from kfkd_kit.data import write_kaggle_dataset

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
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
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
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2])))
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


# -- exact resume: the killed and resumed run ends with the uninterrupted run's model --------
# fp32 on the CPU, a fixed seed; net8 narrower than its default to stay quick (its recipe
# whole: batch norm, dropout, AdamW, one-cycle, flip + affine + intensity, weight average)
EXACT_EPOCHS = {"net1": 150, "net8": 30}   # room for a kill to land before the end on a busy machine
SMALL_NET8 = {"module__width": 8, "module__hidden": 64}


def _exact_command(folder, model, net):
    command = _command(folder, model, net, EXACT_EPOCHS[net]) + ["--precision", "fp32",
                                                                  "--seed", "3"]
    if net == "net8":
        params = folder / "small-net8.json"
        params.write_text(json.dumps(SMALL_NET8))
        command += ["--params", str(params)]
    return command


def _run(command):
    out = subprocess.run(command, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2])))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout


def _rows(history):
    """The history as JSON without the epochs' wall times (NaN equals NaN)."""
    return [json.dumps({k: v for k, v in row.items() if k != "dur"}, sort_keys=True)
            for row in history]


def _assert_same_model(expected, resumed, X):
    """The same weights and buffers, predictions and history (bit for bit)."""
    import numpy as np
    import torch
    nets = [model.named_steps["net"] if hasattr(model, "named_steps") else model
            for model in (expected, resumed)]
    states = [net.module_.state_dict() for net in nets]
    assert list(states[0]) == list(states[1])
    different = [name for name in states[0]
                 if not torch.equal(states[0][name], states[1][name])]
    assert not different, f"different after resuming: {different}"
    np.testing.assert_array_equal(expected.predict(X), resumed.predict(X))
    assert _rows(nets[0].history) == _rows(nets[1].history)
    assert nets[0].flip_axis_ == nets[1].flip_axis_


# The command, run so that it sends itself SIGKILL (or another signal) once epoch K's
# checkpoint is on disk: a real kill -9 at a chosen epoch, however busy the machine (a test
# polling the run folder from outside was sometimes descheduled until the run had finished).
_SELF_KILL = """
import os, signal, sys
from skorch.callbacks import Callback
from kfkd_kit import runs
from kfkd_kit.cli import main
after = int(os.environ["KFKD_TEST_KILL_AFTER"])
signum = int(os.environ.get("KFKD_TEST_SIGNAL", signal.SIGKILL))
class KillNine(Callback):
    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == after:
            checkpoint = dict(net.callbacks_)["checkpoint"]
            checkpoint.save_model(net, force=True)   # it skips epochs shorter than its budget
            checkpoint.wait()
            os.kill(os.getpid(), signum)
plain = runs.checkpoint_callbacks
def with_kill(run_dir):
    first, last = plain(run_dir)
    return first, last + [("kill_nine", KillNine())]
runs.checkpoint_callbacks = with_kill
sys.exit(main(sys.argv[1:]))
"""


def _kill_itself_after(command, epoch, signum=signal.SIGKILL):
    assert command[1:3] == ["-m", "kfkd_kit"]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]),
               KFKD_TEST_KILL_AFTER=str(epoch), KFKD_TEST_SIGNAL=str(int(signum)))
    return subprocess.run([command[0], "-c", _SELF_KILL, *command[3:]], capture_output=True,
                          text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def uninterrupted(folder):
    """{net: the model the command gives when nothing stops it}, each trained once."""
    models = {}

    def model(net):
        if net not in models:
            path = folder / "whole" / f"{net}.joblib"
            _run(_exact_command(folder, path, net))
            models[net] = joblib.load(path)
        return models[net]
    return model


@pytest.mark.parametrize("net, kill_after",
                         [("net1", 1), ("net1", 40), ("net8", 1), ("net8", 3)])
def test_kill_9_and_resume_ends_with_the_uninterrupted_model(folder, uninterrupted, net,
                                                             kill_after):
    from kfkd_kit.data import load_test
    model = folder / f"killed-{net}-{kill_after}" / f"{net}.joblib"
    run_dir = Path(f"{model}.run")
    command = _exact_command(folder, model, net)
    killed = _kill_itself_after(command, kill_after)
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:] + killed.stderr[-2000:]
    stopped = json.loads((run_dir / "last.json").read_text())["epoch"]
    assert kill_after <= stopped < EXACT_EPOCHS[net] and not model.exists()
    assert f"resuming from epoch {stopped} " in _run(command)
    _assert_same_model(uninterrupted(net), joblib.load(model), load_test(folder / "data").X)


# -- the same, in-process: the run folder as a kill -9 leaves it after a chosen epoch ---------
class _KillAfter(Callback):
    """Put after the checkpoint: after epoch ``epoch`` it has the run's checkpoint written
    and copies the run folder to ``into``, as a kill -9 then would leave it."""

    def __init__(self, epoch, into):
        self.epoch = epoch
        self.into = into

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            checkpoint = dict(net.callbacks_)["checkpoint"]
            checkpoint.save_model(net, force=True)
            checkpoint.wait()
            shutil.copytree(checkpoint.root, self.into)


def _with_run(estimator, run_dir, kill_after=None, into=None):
    net = estimator.named_steps["net"]
    first, last = runs.checkpoint_callbacks(run_dir)
    extra = [] if kill_after is None else [("kill", _KillAfter(kill_after, into))]
    return estimator.set_params(net__callbacks=first + list(net.callbacks) + last + extra)


def _small_net8(**overrides):
    from kfkd_kit import configs
    estimator = configs.build("net8", device="cpu", precision="fp32", verbose=0, seed=3,
                              **overrides)
    return estimator.set_params(**{f"net__{k}": v for k, v in SMALL_NET8.items()})


@pytest.fixture(scope="module")
def faces():
    from kfkd_kit.data.synthetic import make_faces
    return make_faces(60, 0)


def test_a_run_killed_after_its_last_epoch_resumes_to_the_same_model(tmp_path, faces):
    # its final checkpoint holds the raw weights and the weight average, not the average put in
    whole = _with_run(_small_net8(epochs=3), tmp_path / "run").fit(*faces)
    resumed = _with_run(_small_net8(epochs=3), tmp_path / "run").fit(*faces)
    assert resumed.named_steps["net"].resumed_epochs_ == 3
    _assert_same_model(whole, resumed, faces[0])


def test_early_stopping_resumes_with_its_count_and_best_weights(tmp_path, faces):
    from kfkd_kit.net.losses import MaskedMSELoss

    def build():   # on these 60 faces the squared error's valid loss is best at epoch 2,
        # so early stopping ends the fit at 5 (net8's absolute error keeps improving)
        return _small_net8(epochs=12, patience=3).set_params(net__criterion=MaskedMSELoss)
    whole = _with_run(build(), tmp_path / "whole", kill_after=3,
                      into=tmp_path / "killed").fit(*faces)
    net = whole.named_steps["net"]
    # early stopping ended it, and put back the weights of an earlier epoch
    stopping = dict(net.callbacks_)["early_stopping"]
    assert len(net.history) < 12 and stopping.best_epoch_ < len(net.history)
    resumed = _with_run(build(), tmp_path / "killed").fit(*faces)
    assert resumed.named_steps["net"].resumed_epochs_ == 3
    _assert_same_model(whole, resumed, faces[0])


class _FakeClock:
    """perf_counter for the time budget: one second later at every reading."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 1.0
        return self.now


def test_a_budgeted_run_resumes_with_its_plan_and_schedule(tmp_path, faces, monkeypatch):
    from kfkd_kit.net import budget as budget_module
    # one fake second an epoch: a budget of 8 s less its 2 s margin plans 6 epochs
    monkeypatch.setattr(budget_module, "time", _FakeClock())
    whole = _with_run(_small_net8(epochs=50, budget=8), tmp_path / "whole", kill_after=3,
                      into=tmp_path / "killed").fit(*faces)
    net = whole.named_steps["net"]
    assert net.planned_epochs_ == 6 == len(net.history)
    monkeypatch.setattr(budget_module, "time", _FakeClock())
    resumed = _with_run(_small_net8(epochs=50, budget=8), tmp_path / "killed").fit(*faces)
    again = resumed.named_steps["net"]
    assert again.resumed_epochs_ == 3 and again.budget_plan_ == net.budget_plan_
    cycle = dict(again.callbacks_)["lr_schedule"]
    assert cycle.total_steps_ == dict(net.callbacks_)["lr_schedule"].total_steps_ < 50
    _assert_same_model(whole, resumed, faces[0])


# -- seed ensembles (MODELS=N): a run folder per net -------------------------------------------
def _small_pair(n_jobs):
    from kfkd_kit.meta.ensemble import SeedEnsemble
    return SeedEnsemble(_small_net8(epochs=3), seeds=[3, 4], n_jobs=n_jobs,
                        heads=["dense", "softargmax"])


def _assert_same_ensemble(expected, resumed, X):
    assert len(expected.estimators_) == len(resumed.estimators_) == 2
    for a, b in zip(expected.estimators_, resumed.estimators_):
        _assert_same_model(a, b, X)
        names = [name for name, _ in b.named_steps["net"].callbacks]
        assert "checkpoint" not in names and "resume" not in names   # this run's, not kept


def test_an_ensemble_killed_mid_run_resumes_each_net_to_the_uninterrupted_model(
        tmp_path, faces, monkeypatch):
    killed = tmp_path / "killed"
    plain = runs.checkpoint_callbacks

    def with_copy(run_dir):
        first, last = plain(run_dir)
        return first, last + [("copy", _KillAfter(1, killed / Path(run_dir).name))]
    monkeypatch.setattr(runs, "checkpoint_callbacks", with_copy)
    whole = _small_pair(n_jobs=1).fit(*faces, run_dir=tmp_path / "whole")
    monkeypatch.setattr(runs, "checkpoint_callbacks", plain)
    shutil.copy(tmp_path / "whole" / runs.RUN_RECORD, killed)   # the ensemble's own record
    resumed = _small_pair(n_jobs=1).fit(*faces, run_dir=killed)
    assert [e.named_steps["net"].resumed_epochs_ for e in resumed.estimators_] == [1, 1]
    _assert_same_ensemble(whole, resumed, faces[0])


def test_an_ensemble_whose_nets_had_finished_resumes_to_the_same_model(tmp_path, faces, capsys):
    whole = _small_pair(n_jobs=2).fit(*faces, run_dir=tmp_path / "run")   # in worker processes
    resumed = _small_pair(n_jobs=2).fit(*faces, run_dir=tmp_path / "run")
    assert [e.named_steps["net"].resumed_epochs_ for e in resumed.estimators_] == [3, 3]
    assert "seed 4: resuming from epoch 3" in capsys.readouterr().out
    _assert_same_ensemble(whole, resumed, faces[0])
    # another net's run in the folder is set aside, not resumed
    from kfkd_kit.meta.ensemble import SeedEnsemble
    again = SeedEnsemble(_small_net8(epochs=2), seeds=[3, 4], n_jobs=1).fit(
        *faces, run_dir=tmp_path / "run")
    assert [len(e.named_steps["net"].history) for e in again.estimators_] == [2, 2]
    assert "other settings or data" in capsys.readouterr().out
    assert (tmp_path / "run.old" / "seed-3").is_dir()


def test_ctrl_c_stops_an_ensemble_and_the_same_command_resumes_it(folder):
    model = folder / "pair" / "net1.joblib"
    run_dir = Path(f"{model}.run")
    command = _command(folder, model, epochs=60) + ["--ensemble", "2", "--jobs", "1", "--seed", "3"]
    stopped = _kill_itself_after(command, 15, signal.SIGINT)    # Ctrl-C after the 15th epoch
    assert stopped.returncode == 130, stopped.stdout[-2000:] + stopped.stderr[-2000:]
    assert "run the same command to resume" in stopped.stdout and not model.exists()
    assert json.loads((run_dir / "seed-3" / "last.json").read_text())["epoch"] == 15
    assert not (run_dir / "seed-4" / "last.json").exists()   # the second net never started
    assert "seed 3: resuming from epoch 15" in _run(command)
    ensemble = joblib.load(model)
    assert [len(e.named_steps["net"].history) for e in ensemble.estimators_] == [60, 60]
    assert not run_dir.exists()                       # finished: checkpoints removed
