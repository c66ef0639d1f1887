"""`kfkd tune` (Optuna) and `--params`: tiny synthetic data, 1-3 epochs of net8 per trial.

The command end to end (files, table, the best JSON back through `kfkd train --params`),
resume, two worker processes sharing one journal file, pruning, the objective computed
again by hand, the parameters file, and bad input.
"""
import ast
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from skorch.callbacks import Callback

import kfkd_kit
from kfkd_kit.net.estimator import flip_axis_of
from kfkd_kit import configs
from kfkd_kit.net import settings as net_settings
from kfkd_kit.commands import tune
from kfkd_kit.search import space as tune_space, study as tune_study
from kfkd_kit.cli import main
from kfkd_kit.data import load_training
from kfkd_kit.keypoints import mirror_images, mirror_targets
from kfkd_kit.net.metrics import masked_rmse_px
from kfkd_kit.data.splits import grouped_holdout
from kfkd_kit.data import write_kaggle_dataset
from kfkd_kit.meta.tta import FlipTTA

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--device", "cpu", "--precision", "fp32"]
TRIAL_LINE = re.compile(r"^trial (\d+) \[\d+/\d+\]: ", re.M)
# net8's own values on the dimensions searched with the epochs held: trial 0's
NET8_START = {"width": 16, "dropout": 0.1, "rotate": 12.0, "scale": 0.08, "shift": 3.0,
              "weight_decay": 0.05, "lr": 0.006}


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tune") / "data"
    write_kaggle_dataset(folder, n_train=40, n_test=4, seed=2)
    return folder


def tune_cli(faces, out, *extra):
    return main(["tune", "--data", str(faces), "--out", str(out), *FAST, *extra])


def table_rows(path):
    """The trial rows of the Markdown table: [[trial, state, rmse, seconds, ...]]."""
    lines = [line for line in Path(path).read_text().splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def load_study(storage, name="net8"):
    return optuna.load_study(study_name=name, storage=tune_study.open_storage(storage)[0])


# ---------------------------------------------------------------- the command


@pytest.mark.slow
def test_tune_writes_table_best_json_and_plots_and_train_takes_the_best(faces, tmp_path, capsys):
    out = tmp_path / "cv"
    assert tune_cli(faces, out, "--trials", "3", "--epochs", "1") == 0
    printed = capsys.readouterr().out.splitlines()
    assert [int(n) for n in TRIAL_LINE.findall("\n".join(printed))] == [0, 1, 2]
    files = {p.name for p in out.iterdir()}
    assert {"tune-net8.db", "tune-net8.md", "tune-net8-best.json", "tune-net8-history.png",
            "tune-net8-importances.png"} <= files
    assert not [f for f in files if f.endswith(".tmp")]
    assert printed[-1].startswith("files: ") and str(out / "tune-net8-best.json") in printed[-1]
    rows = table_rows(out / "tune-net8.md")
    assert [r[0] for r in rows] == ["0", "1", "2"] and {r[1] for r in rows} == {"COMPLETE"}
    header = [c.strip() for c in [line for line in (out / "tune-net8.md").read_text().splitlines()
                                  if line.startswith("|")][0].strip("|").split("|")]
    assert header[:4] == ["trial", "state", "RMSE px", "seconds"]
    assert "epochs" not in header and "width" in header and "lr" in header   # --epochs holds them

    best = json.loads((out / "tune-net8-best.json").read_text())
    study = load_study(f"sqlite:///{out / 'tune-net8.db'}")
    assert study.trials[0].params == NET8_START          # trial 0: net8 as configured
    assert all(t.params != NET8_START for t in study.trials[1:])
    assert best["trial"] == study.best_trial.number and best["rmse_px"] == study.best_value
    assert float(rows[best["trial"]][2]) == pytest.approx(best["rmse_px"], abs=1e-4)
    params = best["params"]
    assert set(params) == {"module__width", "module__dropout", "iterator_train__rotate",
                           "iterator_train__scale", "iterator_train__shift",
                           "optimizer__weight_decay", "lr", "callbacks__lr_schedule__max_lr"}
    assert params["lr"] == params["callbacks__lr_schedule__max_lr"] == study.best_params["lr"]

    model = tmp_path / "models" / "net8.joblib"
    assert main(["train", "--data", str(faces), "--net", "net8", "--params",
                 str(out / "tune-net8-best.json"), "--epochs", "1", "--model", str(model),
                 "--quiet", *FAST]) == 0
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["params_file"] == {"path": str(out / "tune-net8-best.json"), "params": params}
    settings = meta["params"]
    assert settings["module"]["width"] == params["module__width"]
    assert settings["module"]["dropout"] == params["module__dropout"]
    assert settings["lr"] == settings["max_lr"] == params["lr"]
    assert settings["augment"]["rotate"] == params["iterator_train__rotate"]
    assert settings["weight_decay"] == params["optimizer__weight_decay"]
    assert settings["max_epochs"] == 1   # the command line wins over the file


@pytest.mark.slow
def test_the_same_command_resumes_the_study_up_to_the_total(faces, tmp_path, capsys):
    out = tmp_path / "cv"
    assert tune_cli(faces, out, "--trials", "1", "--epochs", "1") == 0
    capsys.readouterr()
    assert tune_cli(faces, out, "--trials", "2", "--epochs", "1") == 0
    second = capsys.readouterr().out
    assert "1 of 2 trials finished" in second
    assert TRIAL_LINE.findall(second) == ["1"]           # one more, numbered after the first
    assert [r[0] for r in table_rows(out / "tune-net8.md")] == ["0", "1"]
    assert tune_cli(faces, out, "--trials", "2", "--epochs", "1") == 0
    third = capsys.readouterr().out
    assert "already has 2 finished trials" in third and not TRIAL_LINE.findall(third)
    assert len(load_study(f"sqlite:///{out / 'tune-net8.db'}").trials) == 2
    # another objective is not mixed into the study
    assert tune_cli(faces, out, "--trials", "3", "--epochs", "1", "--holdout", "0.3") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "was run with other settings or data" in err and "holdout" in err
    assert len(load_study(f"sqlite:///{out / 'tune-net8.db'}").trials) == 2


@pytest.mark.slow
def test_two_worker_processes_share_one_journal_study(faces, tmp_path):
    journal = tmp_path / "shared" / "net8.journal"
    out = tmp_path / "cv"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), KFKD_PROGRESS="0")
    command = [sys.executable, "-m", "kfkd_kit", "tune", "--data", str(faces), "--trials", "4",
               "--epochs", "1", "--storage", f"journal:{journal}", "--out", str(out), *FAST]
    workers = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [w.communicate(timeout=600) for w in workers]
    for worker, (stdout, stderr) in zip(workers, results):
        assert worker.returncode == 0, stderr
    ran = [set(map(int, TRIAL_LINE.findall(stdout))) for stdout, _ in results]
    assert not ran[0] & ran[1]                          # no trial run twice

    study = load_study(f"journal:{journal}")
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert {t.number for t in finished} == ran[0] | ran[1]
    assert len(study.trials) == len(finished)           # nothing failed or left running
    assert 4 <= len(finished) <= 5                      # the total; at most one in flight on top
    assert sorted(t.number for t in study.trials) == list(range(len(study.trials)))
    assert study.trials[0].params == NET8_START          # the baseline, run by one worker
    draws = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(draws)) == len(draws)                # no two trials drew the same parameters
    for worker, numbers in zip(workers, ran):           # each trial ran where it was reported
        assert {t.number for t in study.trials
                if t.user_attrs["worker"].endswith(f":{worker.pid}")} == numbers
    assert len(table_rows(out / "tune-net8.md")) == len(study.trials)


# ---------------------------------------------------------------- pruning and the objective


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Fixed parameter lr with value 30")
def test_bad_trials_are_pruned_on_the_valid_loss(faces, tmp_path):
    storage = f"journal:{tmp_path / 'prune.journal'}"
    study = optuna.create_study(study_name="net8", storage=tune_study.open_storage(storage)[0])
    study.enqueue_trial({"lr": 0.003, "width": 8})
    study.enqueue_trial({"lr": 30.0, "width": 8})           # out of range, and diverges at once
    lines = []
    estimator = configs.build("net8", epochs=3, device="cpu", precision="fp32", verbose=0)
    result = tune.run_tune(estimator, data_dir=faces, trials=2, storage=storage,
                           out_dir=tmp_path / "cv", fixed=("epochs",), plots=False,
                           pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
                           say=lines.append)
    good, bad = load_study(storage).trials
    assert good.state == TrialState.COMPLETE and sorted(good.intermediate_values) == [0, 1, 2]
    assert bad.state == TrialState.PRUNED and sorted(bad.intermediate_values) == [0]
    assert any(line.startswith("trial 1 [2/2]: pruned after epoch 1") for line in lines)
    assert result["finished"] == 2 and result["best"]["trial"] == 0
    pruned = table_rows(tmp_path / "cv" / "tune-net8.md")[1]
    assert pruned[1] == "PRUNED (epoch 1)" and pruned[2] == ""   # its value is a loss, not px


class CtrlC(Callback):
    """Ctrl-C at the end of the first epoch, as a user presses it (SIGINT to the process)."""

    def on_epoch_end(self, net, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow
def test_ctrl_c_fails_the_trial_instead_of_scoring_a_cut_short_net(faces, tmp_path):
    storage = f"journal:{tmp_path / 'stop.journal'}"
    estimator = configs.build("net8", epochs=2, device="cpu", precision="fp32", verbose=0)
    callbacks = list(configs.inner_net(estimator).callbacks)
    estimator.set_params(net__callbacks=callbacks + [("ctrl_c", CtrlC())])
    with pytest.raises(KeyboardInterrupt):   # skorch alone would end the fit quietly
        tune.run_tune(estimator, data_dir=faces, trials=2, storage=storage, fixed=("epochs",),
                      out_dir=tmp_path / "cv", pruner=None, plots=False, say=lambda line: None)
    (trial,) = load_study(storage).trials
    assert trial.state == TrialState.FAIL
    assert [r[1] for r in table_rows(tmp_path / "cv" / "tune-net8.md")] == ["FAIL"]


def test_pruning_compares_trials_of_the_same_epochs_only():
    from optuna.distributions import FloatDistribution, IntDistribution
    distributions = {"epochs": IntDistribution(40, 120, step=20), "x": FloatDistribution(0, 1)}

    def trial(epochs, loss, state=TrialState.COMPLETE):
        return optuna.trial.create_trial(
            state=state, value=None if state == TrialState.RUNNING else loss,
            params={"epochs": epochs, "x": 0.5}, distributions=distributions,
            intermediate_values={step: loss for step in range(12)})

    study = optuna.create_study()
    for _ in range(3):
        study.add_trial(trial(40, 0.1))      # short runs: annealed by epoch 12
        study.add_trial(trial(120, 0.5))     # long runs: near their peak lr at epoch 12
    running = trial(120, 0.4, TrialState.RUNNING)
    median = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=10)
    assert median.prune(study, running)                          # the median over all: 0.3
    assert not tune_study.same_epochs_pruner(median).prune(study, running)   # over its own: 0.5
    assert tune_study.same_epochs_pruner(median).prune(study, trial(40, 0.4, TrialState.RUNNING))


@pytest.mark.slow
def test_a_trials_value_is_the_held_out_rmse_with_flip_tta(faces, tmp_path):
    storage = f"journal:{tmp_path / 'one.journal'}"
    estimator = configs.build("net8", epochs=2, device="cpu", precision="fp32", verbose=0, seed=3)
    tune.run_tune(estimator, data_dir=faces, trials=1, storage=storage, out_dir=tmp_path / "cv",
                  holdout=0.25, random_state=3, fixed=("epochs",), pruner=None, plots=False,
                  say=lambda line: None)
    (trial,) = load_study(storage).trials
    # again by hand: the same split, net and parameters, the mirror predictions averaged in
    training = load_training(faces)
    X, y = training.X, training.y
    train_rows, held = grouped_holdout(X, 0.25, 3)
    assert len(held) == 10
    model = configs.build("net8", epochs=2, device="cpu", precision="fp32", verbose=0, seed=3)
    model.set_params(**{"net__" + key: value
                        for key, value in tune_space.net_params(trial.params).items()})
    model.fit(X[train_rows], y[train_rows])
    direct = model.predict(X[held])
    both = (direct + mirror_targets(model.predict(mirror_images(X[held])),
                                    axis=flip_axis_of(model))) / 2
    assert trial.value == pytest.approx(masked_rmse_px(y[held], both), rel=1e-6)
    assert trial.value != pytest.approx(masked_rmse_px(y[held], direct), rel=1e-6)


def test_the_search_space_is_net8s_and_settings_hold_dimensions():
    net = configs.inner_net(configs.build("net8"))
    for dim in tune_space.SPACE:
        for key in (dim.key,) + dim.also:
            assert net_settings._known_param(net, key), key
    default = {dim.key: dim for dim in tune_space.SPACE}
    assert default["module__width"].low <= net.module__width <= default["module__width"].high
    assert default["max_epochs"].low <= net.max_epochs <= default["max_epochs"].high
    assert default["lr"].low <= net.lr <= default["lr"].high
    names = lambda fixed: [d.name for d in tune_space.search_space(fixed)]  # noqa: E731
    assert "epochs" in names(()) and "lr" in names(())
    assert "epochs" not in names(("budget",)) and "epochs" not in names(("epochs",))
    assert "lr" not in names(("lr",)) and "width" in names(("epochs", "lr", "budget"))


def test_trial_0_starts_from_the_nets_own_values_where_they_lie_in_the_space():
    space = tune_space.search_space(("epochs",))
    assert tune_space.starting_point(configs.build("net8"), space) == NET8_START
    assert tune_space.starting_point(configs.build("net8"), tune_space.SPACE)["epochs"] == 80
    odd = configs.build("net8", lr=0.05)                 # above the range: drawn instead
    odd.set_params(net__module__width=18, net__module__dropout=0.2)   # 18: off the step of 4
    start = tune_space.starting_point(odd, space)
    assert "lr" not in start and "width" not in start and start["dropout"] == 0.2


def test_tune_imports_no_other_command():
    tree = ast.parse((Path(kfkd_kit.__file__).parent / "commands" / "tune.py").read_text())
    imported = {node.module for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                 and node.level == 1 and not node.module for alias in node.names}
    assert not imported & {"cli", "train", "zoo", "selection", "lrfind", "report", "compare",
                           "submission"}, imported


# ---------------------------------------------------------------- the parameters file


def test_params_apply_through_any_wrapper_and_refuse_unknown_names(tmp_path):
    params = {"module__width": 8, "lr": 0.01, "callbacks__lr_schedule__max_lr": 0.01}
    pipeline = configs.apply_params(configs.build("net8"), params)
    assert pipeline.get_params()["net__module__width"] == 8
    wrapped = configs.apply_params(FlipTTA(configs.build("net8")), params)
    assert wrapped.get_params()["estimator__net__callbacks__lr_schedule__max_lr"] == 0.01
    specialists = configs.apply_params(configs.build("specialists"), {"lr": 0.02})
    assert configs.inner_net(specialists).lr == 0.02
    with pytest.raises(ValueError, match=r"^best\.json: unknown parameter\(s\) 'module__widht'"):
        configs.apply_params(configs.build("net8"), {"module__widht": 8}, "best.json")
    with pytest.raises(ValueError, match="unknown parameter"):
        configs.apply_params(configs.build("net1"), {"module__width": 8})   # an MLP has none

    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps(params))
    assert configs.load_params(flat, net="net1") == params
    wrapped_file = tmp_path / "best.json"
    wrapped_file.write_text(json.dumps({"net": "net8", "rmse_px": 2.0, "params": params}))
    assert configs.load_params(wrapped_file, net="net8") == params
    with pytest.raises(ValueError, match="best.json: parameters for net8, not net1"):
        configs.load_params(wrapped_file, net="net1")


@pytest.mark.slow
@pytest.mark.parametrize("content, message", [
    (None, r"missing\.json: no such parameters file"),
    ("{not json", r"bad\.json: not valid JSON \(.*line 1"),
    ("[1, 2]", r"bad\.json: expected a JSON object of parameters"),
    ('{"module__bogus": 3}', r"bad\.json: unknown parameter\(s\) 'module__bogus'"),
    ('{"net": "net8", "params": {"lr": 0.01}}', r"bad\.json: parameters for net8, not net1"),
])
def test_train_refuses_a_bad_params_file_in_one_line(tmp_path, capsys, content, message):
    path = tmp_path / ("missing.json" if content is None else "bad.json")
    if content is not None:
        path.write_text(content)
    net = "net1" if "net8" in (content or "") else "net8"
    model = tmp_path / "models" / "m.joblib"
    assert main(["train", "--data", str(tmp_path / "nodata"), "--net", net, "--params", str(path),
                 "--model", str(model), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err
    assert not model.parent.exists() and not (tmp_path / "nodata").exists()


# ---------------------------------------------------------------- bad input


@pytest.mark.slow
@pytest.mark.parametrize("argv, message", [
    (["--trials", "0"], r"--trials: expected a positive integer, got '0'"),
    (["--net", "net1"], r"--net: invalid choice: 'net1'"),
])
def test_tune_refuses_bad_arguments(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        tune_cli(tmp_path / "data", tmp_path / "cv", *argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err), err


@pytest.mark.slow
@pytest.mark.parametrize("storage, message", [
    ("redis://localhost:6379/0", r"--storage 'redis://localhost:6379/0': not a storage"),
    ("cv/tune.db", r"--storage 'cv/tune.db': not a storage; give an RDB URL .* or journal:PATH"),
    ("journal:", r"--storage journal:PATH needs the journal file's path"),
    ("sqlite:////nonexistent-folder/x/tune.db", r"--storage sqlite:////nonexistent-folder/x/tune\.db: cannot open it"),
])
def test_tune_refuses_a_bad_storage_in_one_line(faces, tmp_path, capsys, storage, message):
    out = tmp_path / "cv"
    assert tune_cli(faces, out, "--trials", "1", "--epochs", "1", "--storage", storage) == 2
    err = capsys.readouterr().err
    assert err.startswith("kfkd tune: error: ") and err.count("\n") == 1, err
    assert re.search(message, err), err
    assert not out.exists() or not list(out.iterdir())


@pytest.mark.slow
def test_tune_refuses_a_holdout_out_of_range(faces, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:               # argparse checks it first
        tune_cli(faces, tmp_path / "cv", "--holdout", "1.5")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --holdout: expected a fraction in (0, 1)" in err
