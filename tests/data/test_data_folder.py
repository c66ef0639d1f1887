"""Which training data a command uses: the folder given, or, for the default data/ of a fresh
clone only, the built-in synthetic faces; a folder the user names must hold Kaggle's
training file."""
import pytest

from kfkd_kit.cli import main
from kfkd_kit.data import _files, synthetic_dataset
from kfkd_kit.data import write_kaggle_dataset


@pytest.fixture
def small_synthetic(monkeypatch):
    made = []

    def write(folder, seed):
        made.append(folder)
        return write_kaggle_dataset(folder, n_train=12, n_test=3, seed=seed)
    monkeypatch.setattr(synthetic_dataset, "write_kaggle_dataset", write)
    return made


def test_a_named_folder_that_does_not_exist_is_an_error(tmp_path, small_synthetic):
    with pytest.raises(FileNotFoundError, match=r"dta: no such folder"):
        _files.resolve_data_dir(tmp_path / "dta")
    assert not (tmp_path / "dta").exists() and not small_synthetic


def test_a_named_folder_without_a_training_file_is_an_error(tmp_path, small_synthetic):
    folder = tmp_path / "mine"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match=r"mine: no training file \(looked for "
                                                r"training\.csv, "):
        _files.resolve_data_dir(folder)
    assert list(folder.iterdir()) == [] and not small_synthetic


def test_a_named_folder_says_where_its_synthetic_faces_are(tmp_path):
    folder = tmp_path / "mine"
    write_kaggle_dataset(folder / "synthetic", n_train=5, n_test=2, seed=0)
    with pytest.raises(FileNotFoundError, match=rf"--data {folder / 'synthetic'}$"):
        _files.resolve_data_dir(folder)


def test_the_default_folder_falls_back_to_synthetic_faces(tmp_path, monkeypatch,
                                                          small_synthetic):
    monkeypatch.chdir(tmp_path)
    said = []
    assert _files.resolve_data_dir("data", said.append) == _files.Path("data/synthetic")
    assert small_synthetic == [_files.Path("data/synthetic")]
    assert said[0].startswith("NOTE: no Kaggle training file in data/")
    assert _files.resolve_data_dir("./data/", said.append) == _files.Path("data/synthetic")
    assert len(small_synthetic) == 1 and "using the built-in SYNTHETIC" in said[1]


def test_a_named_folder_with_kaggle_files_is_used(tmp_path, small_synthetic):
    write_kaggle_dataset(tmp_path / "kaggle", n_train=5, n_test=2, seed=0)
    assert _files.resolve_data_dir(tmp_path / "kaggle") == tmp_path / "kaggle"
    assert not small_synthetic


@pytest.mark.slow
def test_train_with_a_mistyped_data_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys,
                                                           small_synthetic):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "dta", "--epochs", "1", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kfkd train: error: dta: no such folder")
    assert list(tmp_path.iterdir()) == [] and not small_synthetic
