import numpy as np
import pytest

from kfkd_kit.cli import main
from kfkd_kit.commands.zoo import parse_epoch_caps
from kfkd_kit.data import write_kaggle_dataset
from kfkd_kit.data.splits import grouped_holdout


def test_holdout_split_is_seeded_and_disjoint():
    X = np.arange(50 * 4).reshape(50, 4)
    train, held = grouped_holdout(X, 0.2, random_state=3)
    assert len(held) == 10 and len(np.intersect1d(train, held)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, held])), np.arange(50))
    assert np.array_equal(held, grouped_holdout(X, 0.2, random_state=3)[1])
    assert not np.array_equal(held, grouped_holdout(X, 0.2, random_state=4)[1])
    # the seeded permutation it was before groups, where no image repeats
    order = np.random.default_rng(3).permutation(50)
    assert np.array_equal(held, np.sort(order[:10]))


@pytest.mark.slow
def test_zoo_writes_a_markdown_row_per_net(tmp_path, capsys):
    write_kaggle_dataset(tmp_path / "data", n_train=60, n_test=4, seed=2)
    out = tmp_path / "RESULTS.md"
    assert main(["zoo", "--data", str(tmp_path / "data"), "--nets", "net1,net3",
                 "--epoch-cap", "1,net1=2", "--device", "cpu", "--out", str(out)]) == 0
    text = out.read_text()
    assert "**not the tutorial's** for net1: 2, net3: 1" in text
    rows = [line for line in text.splitlines() if line.startswith("| net")]
    assert [r.split("|")[1].strip() for r in rows] == ["net", "net1", "net3"]
    net1 = rows[1].split("|")
    assert 0 < int(net1[3]) <= 18  # complete rows only: 18 of the 60, less those held out
    assert net1[4].strip() == "2"
    assert float(net1[5]) > 0 and float(net1[6]) > 0 and net1[8].strip() == "cpu"
    assert "[2/2] net3" in capsys.readouterr().out


@pytest.mark.slow
def test_zoo_takes_epochs_like_every_other_command(tmp_path, capsys):
    write_kaggle_dataset(tmp_path / "data", n_train=40, n_test=4, seed=2)
    out = tmp_path / "RESULTS.md"
    assert main(["zoo", "--data", str(tmp_path / "data"), "--nets", "net1,net2", "--epochs", "1",
                 "--device", "cpu", "--no-tta", "--out", str(out)]) == 0
    rows = [line.split("|") for line in out.read_text().splitlines() if line.startswith("| net")]
    assert [r[4].strip() for r in rows[1:]] == ["1", "1"]
    assert "for net1: 1, net2: 1" in out.read_text()


def test_epoch_caps_parse_and_reject_unknown_nets():
    assert parse_epoch_caps("25,net1=400") == {None: 25, "net1": 400}
    assert parse_epoch_caps(None) == {}
    with pytest.raises(ValueError, match="unknown net"):
        parse_epoch_caps("25,net9=3")
    for bad in ("lots", "0", "net1=-3"):
        with pytest.raises(ValueError, match="not N or NET=N"):
            parse_epoch_caps(bad)


def test_write_section_replaces_only_its_own_part(tmp_path):
    from kfkd_kit.utils.atomic import write_section
    path = tmp_path / "RESULTS.md"
    write_section(path, "net8", "net8 table v1")
    write_section(path, "zoo", "zoo table v1")
    path.write_text(path.read_text() + "\nhand-written note\n")
    write_section(path, "zoo", "zoo table v2")
    write_section(path, "net8", "net8 table v2\nsecond line")
    text = path.read_text()
    assert text.index("net8 table v2") < text.index("zoo table v2") < text.index("hand-written")
    assert "v1" not in text and text.count("<!-- begin zoo -->") == 1
    assert "second line\n<!-- end net8 -->" in text


def test_the_zoo_table_is_written_by_the_library_into_its_own_section(tmp_path):
    from types import SimpleNamespace

    from kfkd_kit.search.zoo import write_table
    training = SimpleNamespace(source="data/training.csv", fingerprint="f" * 16, X=np.zeros((60, 4)))
    results = [{"net": "net1", "description": "one hidden layer", "train_rows": 40, "epochs": "2",
                "max_epochs": 2, "tutorial_epochs": 400, "seconds": 3.2, "device": "cpu",
                "rmse_px": 3.14159, "rmse_tta_px": 3.0},
               {"net": "mine", "description": "mine", "train_rows": 48, "epochs": "1-2 (2 nets)",
                "max_epochs": 2, "tutorial_epochs": None, "seconds": 1.0, "device": "cpu",
                "rmse_px": 2.5}]
    path = tmp_path / "RESULTS.md"
    path.write_text("kept\n")
    write_table(results, path, training, 12, 7)
    text = path.read_text()
    assert text.startswith("kept\n") and "<!-- begin zoo -->" in text
    assert "12 rows held out (seed 7)" in text and "**not the tutorial's** for net1: 2" in text
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in text.splitlines() if line.startswith("| n") or line.startswith("| m")]
    assert rows[1][:6] == ["net1", "one hidden layer", "40", "2", "3.142", "3.000"]
    assert rows[2][4:6] == ["2.500", ""] and rows[2][-1] == ""
