"""The command line's knobs: one name per concept, help with its default in one style, old
spellings still accepted, `kfkd --version`, a `kfkd --help` that imports no command, and
hints that name the command to run."""
import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from kfkd_kit import __version__, cli
from kfkd_kit.commands import COMMANDS, _options, command_name

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "skorch", "sklearn", "pandas", "numpy", "matplotlib")


def subparsers(parser=None):
    parser = parser or cli.build_parser()
    return parser._subparsers._group_actions[0].choices


def parse(*argv):
    return cli.build_parser().parse_args(list(argv))


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"kfkd {__version__}"


def test_help_lists_every_command_and_imports_none_of_them():
    code = ("import sys\n"
            "from kfkd_kit import cli\n"
            "try:\n"
            "    cli.main(['--help'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] in %r\n"
            "      or m.startswith('kfkd_kit.commands.') and m != 'kfkd_kit.commands._options'))\n"
            % (HEAVY,))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.strip().splitlines()[-1] == "LOADED []"
    for name, summary in COMMANDS.items():
        assert f"    {command_name(name)} " in out or f"    {command_name(name)}\n" in out
        assert summary.split()[0] in out


def test_a_command_line_imports_only_its_command(monkeypatch):
    built = []
    monkeypatch.setattr(cli, "_command_module",
                        lambda name: built.append(name) or pytest.fail("stop here"))
    with pytest.raises(pytest.fail.Exception):
        cli.main(["make-data", "--n-train", "3"])
    assert built == ["make_data"]


def test_every_option_has_help_that_ends_with_its_default():
    formatter = _options.HelpFormatter("kfkd")
    for name, parser in subparsers().items():
        assert parser.formatter_class is _options.HelpFormatter, name
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            where = f"kfkd {name} {'/'.join(action.option_strings) or action.dest}"
            assert action.help, f"{where}: no help"
            shown = formatter._get_help_string(action)
            if action.option_strings and action.nargs != 0:       # flags are off by default
                assert "(default: " in shown, f"{where}: its default is not shown"
                assert shown.count("(default: ") == 1, where
            assert "(default " not in shown and "default:" not in shown.replace(
                "(default: ", ""), f"{where}: a default written another way: {shown}"


def test_one_name_per_concept():
    for name, parser in subparsers().items():
        firsts = [a.option_strings[0] for a in parser._actions if a.option_strings]
        assert not {"--out-dir", "--output", "--models", "--trust-model", "--valid-fraction",
                    "--early-stopping"} & set(firsts), name
        for action in parser._actions:
            if action.dest == "out":
                assert action.option_strings[0] == "--out", name
            if "--holdout" in action.option_strings:             # a fraction everywhere
                assert parser.parse_args(["--holdout", "0.3"] + (
                    ["x.jpg"] if name == "predict" else [])).holdout == 0.3
                with pytest.raises(SystemExit):
                    parser.parse_args(["--holdout", "1"])


def test_old_spellings_still_work():
    assert parse("train", "--models", "2").models == 2 == parse("train", "--ensemble", "2").models
    assert parse("submit", "--out-dir", "subs").out == "subs"
    assert parse("submit", "--output", "s.csv").out == "s.csv"
    assert parse("report", "--out-dir", "r").out == "r"
    assert parse("report", "--trust-model").trust_model is True
    assert parse("report", "--trust").trust_model is True
    assert parse("cv", "--valid-fraction", "0.1").valid_fraction == 0.1
    assert parse("cv", "--early-stopping", "3").patience == 3
    assert parse("cv", "--patience", "3").patience == 3
    assert parse("report", "--holdout").holdout == 0.2       # the bare flag of old: a 20% hold-out
    assert parse("report").holdout is None
    assert parse("lrfind", "--out-dir", "o").out == "o" == parse("tune", "--out-dir", "o").out


def test_make_data_writes_into_the_data_folder_unless_out_says_where(tmp_path):
    assert cli.main(["make-data", "--data", str(tmp_path / "d"), "--n-train", "3",
                     "--n-test", "2"]) == 0
    assert (tmp_path / "d" / "synthetic" / "training.csv").is_file()
    assert cli.main(["make-data", "--out", str(tmp_path / "o"), "--n-train", "3",
                     "--n-test", "2"]) == 0
    assert (tmp_path / "o" / "training.csv").is_file()


def test_a_missing_model_names_the_command_that_makes_it(tmp_path, monkeypatch):
    from kfkd_kit import configs
    from kfkd_kit.utils import modelfile
    monkeypatch.chdir(tmp_path)
    for net in configs.CONFIGS:               # every named net's default path
        with pytest.raises(FileNotFoundError, match=rf"make train NET={net}\)"):
            modelfile.load_model(f"models/{net}.joblib")
    other = Path("elsewhere") / "mine.joblib"
    with pytest.raises(FileNotFoundError, match=rf"make train NET=NET MODEL={other}\)"):
        modelfile.load_model(other)


def test_the_trust_hint_fits_every_command_that_loads_a_model():
    from kfkd_kit.utils.modelfile import TRUST_HINT
    assert "--trust " in TRUST_HINT and "TRUST=1" in TRUST_HINT and "make submit" not in TRUST_HINT
    for name in ("submit", "report", "predict", "export"):
        argv = [name, "--trust"] + (["x.jpg"] if name == "predict" else [])
        assert parse(*argv).trust_model is True


def test_the_default_data_folder_is_the_one_that_falls_back():
    from kfkd_kit.data import _files
    assert _options.DEFAULT_DATA == _files.DEFAULT_FOLDER
    for name, parser in subparsers().items():
        if name != "predict" and "--data" in parser._option_string_actions:
            assert parser._option_string_actions["--data"].default == _files.DEFAULT_FOLDER
