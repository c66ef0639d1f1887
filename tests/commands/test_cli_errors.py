"""What `kfkd` does with an error: bad input is one line and exit 2; a bug shows its
traceback; KFKD_DEBUG=1 shows the traceback of bad input too."""
import pytest

from kfkd_kit.cli import main
from kfkd_kit.commands import compare


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KFKD_DEBUG", raising=False)
    assert main(["compare", "--models-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kfkd compare: error: ")
    assert "nowhere" in err and "Traceback" not in err


def test_kfkd_debug_shows_where_bad_input_was_raised(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KFKD_DEBUG", "1")
    assert main(["compare", "--models-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "compare_models" in err
    assert err.rstrip().splitlines()[-1].startswith("kfkd compare: error: ")


def test_a_bug_is_not_dressed_up_as_bad_input(tmp_path, monkeypatch):
    def broken(folder):
        raise KeyError("a bug, not the user's input")
    monkeypatch.setattr(compare, "run_compare", broken)
    with pytest.raises(KeyError, match="a bug"):      # so Python prints the whole traceback
        main(["compare", "--models-dir", str(tmp_path)])
