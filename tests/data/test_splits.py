"""Identical images fall on one side of every split: the net's validation split, cv and
grid folds, the zoo's held-out rows. Without repeats, each is the ungrouped split."""
import numpy as np
import pytest
from skorch.dataset import Dataset, ValidSplit
from sklearn.model_selection import KFold

from kfkd_kit import configs
from kfkd_kit.search import selection
from kfkd_kit.data import splits
from kfkd_kit.cli import main
from kfkd_kit.data import write_kaggle_dataset


def _with_duplicates(n=60, copies=((0, 30), (1, 31), (2, 32), (5, 45), (5, 46), (7, 59))):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (n, 9216), dtype=np.uint8)
    y = rng.uniform(20, 76, (n, 30)).astype(np.float32)
    for a, b in copies:
        X[b] = X[a]
    return X, y, copies


def _together(parts, copies):
    for part in parts:
        members = set(part.tolist())
        for a, b in copies:
            assert (a in members) == (b in members), f"rows {a} and {b} split apart"


def test_image_groups_name_the_first_copy():
    X, _, copies = _with_duplicates()
    groups = splits.image_groups(X)
    for a, b in copies:
        assert groups[b] == groups[a] == a
    assert len(set(groups.tolist())) == 60 - len(copies)


@pytest.mark.parametrize("seed", range(5))
def test_every_split_keeps_identical_images_together(seed):
    X, y, copies = _with_duplicates()
    _together(splits.grouped_shuffle_split(X, 0.3, seed), copies)
    for train, test in splits.grouped_kfold(X, 4, seed):
        _together([train, test], copies)
        assert not set(train) & set(test) and len(train) + len(test) == 60
    _together(splits.grouped_holdout(X, 0.25, seed), copies)
    net = configs.build("net1", seed=seed, valid_fraction=0.3, complete_only=False).named_steps["net"]
    valid = net.validation_rows(X, y)
    _together([valid], copies)


def test_without_repeats_they_are_the_ungrouped_splits():
    X = np.arange(40 * 3).reshape(40, 3)
    train, valid = splits.grouped_shuffle_split(X, 0.2, 7)
    theirs = ValidSplit(0.2, random_state=7)(Dataset(X.astype(np.float32), None))
    assert list(train) == list(theirs[0].indices) and list(valid) == list(theirs[1].indices)
    for (a, b), (c, d) in zip(splits.grouped_kfold(X, 5, 3),
                              KFold(5, shuffle=True, random_state=3).split(X)):
        assert np.array_equal(a, c) and np.array_equal(b, d)


@pytest.mark.slow
def test_cv_folds_keep_planted_duplicates_together(tmp_path):
    X, y, copies = _with_duplicates()
    pipe = configs.build("net1", epochs=1, device="cpu", verbose=0, complete_only=False,
                         valid_fraction=0.0)
    result = selection.cross_validate_net(pipe, X, y, folds=3, keep_models=True,
                                          say=lambda _: None)
    for train, test in result.ensemble.folds_:
        _together([train, test], copies)


@pytest.mark.slow
def test_make_train_validation_split_on_a_file_with_duplicates(tmp_path):
    folder = tmp_path / "data"
    write_kaggle_dataset(folder, n_train=40, n_test=3, seed=4)
    lines = (folder / "training.csv").read_text().splitlines()
    image = lines[1].rsplit(",", 1)[1]
    lines[2] = lines[2].rsplit(",", 1)[0] + "," + image          # row 2 repeats row 1's image
    (folder / "training.csv").write_text("\n".join(lines) + "\n")
    model = tmp_path / "m.joblib"
    together = False
    for seed in range(6):
        assert main(["train", "--data", str(folder), "--net", "net2", "--epochs", "1", "--seed", str(seed),
                     "--device", "cpu", "--quiet", "--model", str(model)]) == 0
        import joblib
        from kfkd_kit.data import load_training
        training = load_training(folder)
        net = joblib.load(model).named_steps["net"]
        valid = net.validation_rows(training.X, training.y)
        assert (0 in valid) == (1 in valid)
        together = together or 0 in valid
    assert together      # some seed put the pair in the validation part
