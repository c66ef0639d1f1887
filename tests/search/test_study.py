"""search/study.py, space.py and study_outputs.py used directly, without the CLI: no net is
trained (a study of 0 trials, or trials made by hand)."""
import json

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState

from kfkd_kit import configs
from kfkd_kit.data import load_training
from kfkd_kit.data import write_kaggle_dataset
from kfkd_kit.search import study as tune_study
from kfkd_kit.search.study_outputs import best_trial, count_finished, write_outputs


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study") / "data"
    write_kaggle_dataset(folder, n_train=40, n_test=4, seed=2)
    return load_training(folder)


def _open(tmp_path, training, name, **kwargs):
    """A study opened (0 trials: nothing trains) and its recorded objective."""
    storage = f"journal:{tmp_path / (name + '.journal')}"
    lines = []
    result = tune_study.tune(configs.build("net8", device="cpu", verbose=0), training,
                             trials=0, storage=storage, study_name=name, out_dir=tmp_path,
                             plots=False, say=lines.append, **kwargs)
    saved = optuna.load_study(study_name=name, storage=tune_study.open_storage(storage)[0])
    return result, saved.user_attrs["kfkd"], lines


def test_the_budget_is_a_plain_argument_that_holds_the_epochs(tmp_path, training):
    _, plain, lines = _open(tmp_path, training, "plain")
    _, budgeted, budget_lines = _open(tmp_path, training, "budget", budget=60.0)
    _, lr_held, _ = _open(tmp_path, training, "lr", fixed=("lr",))
    assert "epochs" in plain["space"] and "lr" in plain["space"]
    assert "epochs" not in budgeted["space"] and "width" in budgeted["space"]
    assert "lr" not in lr_held["space"] and "epochs" in lr_held["space"]
    assert "held by the command line: budget" in budget_lines[0]
    assert "held by the command line" not in lines[0]


def test_a_study_opened_with_other_settings_is_refused(tmp_path, training):
    result, record, _ = _open(tmp_path, training, "net8", holdout=0.2)
    assert result["finished"] == 0 and result["best"] is None and record["holdout"] == 0.2
    with pytest.raises(ValueError, match=r"study 'net8' in .* was run with other settings or "
                                         r"data: held_out_rows .*holdout 0\.2 \(now 0\.3\)"):
        _open(tmp_path, training, "net8", holdout=0.3)
    with pytest.raises(ValueError, match="--holdout must be a fraction between 0 and 1"):
        _open(tmp_path, training, "other", holdout=1.5)


def test_the_table_and_the_best_parameters_come_from_the_trials(tmp_path):
    space = tune_study.search_space(("lr",))
    distributions = {"width": IntDistribution(8, 32, step=4), "dropout": FloatDistribution(0, 0.4)}
    study = optuna.create_study(study_name="hand")
    for value, width, state in ((1.5, 8, TrialState.COMPLETE), (1.2, 16, TrialState.COMPLETE),
                                (0.9, 24, TrialState.PRUNED), (None, 12, TrialState.FAIL)):
        study.add_trial(optuna.trial.create_trial(
            state=state, value=value, params={"width": width, "dropout": 0.1},
            distributions=distributions, intermediate_values={0: 0.9, 3: 0.9}))
    assert count_finished(study) == 3 and best_trial(study).number == 1
    record = {"net": "net8", "held_out_rows": 10, "holdout": 0.2, "seed": 0, "data": "abc",
              "rows": 40}
    files, notes = write_outputs(study, record, "memory", tmp_path, "tune-hand", space)
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in files["table"].read_text().splitlines() if line.startswith("|")][2:]
    assert [r[:3] for r in rows] == [["0", "COMPLETE", "1.5000"], ["1", "COMPLETE", "1.2000"],
                                     ["2", "PRUNED (epoch 4)", ""], ["3", "FAIL", ""]]
    best = json.loads(files["best"].read_text())
    assert best["trial"] == 1 and best["rmse_px"] == 1.2 and best["finished_trials"] == 3
    assert best["params"] == {"module__width": 16, "module__dropout": 0.1} and not notes
