"""The Makefile's knobs: each variable its table declares is the option of the same name of
the kfkd command that each target taking it runs (TTA_SHIFT -> --tta-shift), with the value
given; a variable a target does not take is an error naming the target; `make help` is the
table; TORCH_INDEX installs the pinned torch from another index. `make -n` shows the
commands without running them."""
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from kfkd_kit import cli

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = ROOT / "Makefile"
BUILD = {"PYTHON", "VENV", "TORCH_INDEX"}
# targets -> the program their command line runs
COMMAND_TARGETS = ("download", "train", "submit", "report", "audit", "cv", "stack", "grid", "zoo",
                   "lrfind", "tune", "compare", "predict", "serve", "export", "data")
# a value each variable's option accepts; "1" for a flag
SAMPLES = {
    "DATA": "some/data", "NET": "net8", "MODEL": "m/x.joblib", "OUT": "o/x", "SEED": "7",
    "EPOCHS": "3", "BUDGET": "90s", "LR": "0.02", "MOMENTUM": "0.8", "PATIENCE": "4",
    "VALID": "0", "PRECISION": "fp32", "DEVICE": "cpu", "FLIP_AXIS": "48.25",
    "PIXEL_ORIGIN": "1",
    "BASE": "b.joblib", "PARAMS": "p.json", "ENSEMBLE": "3", "JOBS": "2",
    "HEADS": "dense,softargmax", "PSEUDO_LABELS": "1/2", "LABELLER_BIAS": "1", "FIND_FACES": "1", "LOOKUP": "l.csv", "TTA": "1", "TTA_SHIFT": "2",
    "TRUST": "1", "KAGGLE": "1", "MESSAGE": "it's $HOME", "HOLDOUT": "0.3", "FOLDS": "4",
    "KEEP_MODELS": "1", "RUNS": "cv/a,cv/b", "MEMBERS": "refit", "LRS": "0.1,0.2",
    "MOMENTA": "0.9", "REFIT": "1",
    "SCHEDULER": "tcp://h:1", "DASK_WORKERS": "2", "NETS": "net1,net2", "EPOCH_CAP": "5",
    "BATCHES": "9", "START_LR": "1e-5", "END_LR": "0.5", "TRIALS": "4", "STORAGE": "journal:j",
    "STUDY": "s", "MODELS_DIR": "mm", "IMAGES": "a.jpg b", "ANNOTATED": "ann",
    "DETECTOR": "haar", "MIN_SCORE": "0.95", "SMOOTH": "1", "QUICK": "1", "CLEAN": "c/clean.csv",
    "OOF": "cv/oof-net1-x.json", "HOST": "0.0.0.0", "PORT": "8080",
}

needs_make = pytest.mark.skipif(
    subprocess.run(["which", "make"], capture_output=True).returncode != 0, reason="needs make")
pytestmark = needs_make


def table():
    """{variable: its "## " line} in the order the Makefile declares them."""
    lines = MAKEFILE.read_text().splitlines()
    found = {}
    for before, line in zip(lines, lines[1:]):
        match = re.match(r"([A-Z_]+) \?=", line)
        if match:
            assert before.startswith("## "), f"{match[1]} has no ## line above it"
            found[match[1]] = before[3:]
    return found


def make(tmp_path, *args):
    venv = tmp_path / "venv"
    venv.mkdir(exist_ok=True)
    (venv / ".installed").touch()
    return subprocess.run(["make", "-n", "-s", "-C", str(ROOT), f"VENV={venv}",
                           "-o", f"{venv}/.installed", *args],
                          capture_output=True, text=True, timeout=60)


def command_line(done, program="-m kfkd_kit"):
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stdout.splitlines() if program in line]
    return shlex.split(line.split(program, 1)[1])


def taken(tmp_path, target):
    """The variables ``target`` takes, from its error for one it does not."""
    done = make(tmp_path, target, "NOT_A_KNOB=1")
    assert done.returncode != 0
    match = re.search(rf"make {target}: NOT_A_KNOB= is not a variable of {target}; it takes "
                      r"([A-Z_ ]+)\.", done.stderr)
    assert match, done.stderr
    return match[1].split()


def option(variable):
    return "--" + variable.lower().replace("_", "-")


def test_every_variable_is_documented_has_a_sample_and_is_taken_by_a_target(tmp_path):
    knobs = set(table()) - BUILD
    assert knobs == set(SAMPLES)
    used = {v for target in COMMAND_TARGETS + ("bench",) for v in taken(tmp_path, target)}
    assert used == knobs
    assert "HEADS" in knobs                       # once used without being declared


@pytest.mark.parametrize("target", COMMAND_TARGETS)
def test_each_variable_is_the_option_of_its_name(tmp_path, target):
    names = taken(tmp_path, target)
    given = [f"{v}={SAMPLES[v]}" for v in names]
    argv = command_line(make(tmp_path, target, *given))
    args = cli.build_parser().parse_args(argv)         # the command accepts every one
    command = cli.build_parser()._subparsers._group_actions[0].choices[argv[0]]
    for variable in names:
        if variable == "IMAGES":                       # predict's photos: its positionals
            assert args.images == SAMPLES["IMAGES"].split()
            continue
        flag = option(variable)
        assert flag in argv, f"make {target} {variable}=: no {flag} in {argv}"
        action = command._option_string_actions[flag]
        assert action.option_strings[0] == flag       # its own name, not an old alias
        value = getattr(args, action.dest)
        if action.nargs == 0:
            assert value not in (None, False, 0), (target, variable)
        else:
            expected = action.type(SAMPLES[variable]) if action.type else SAMPLES[variable]
            assert value == expected, (target, variable, value)


def test_an_empty_or_unset_variable_leaves_the_commands_default(tmp_path):
    assert command_line(make(tmp_path, "train")) == ["train"]
    assert command_line(make(tmp_path, "submit", "TTA=0", "TRUST=", "OUT=")) == ["submit"]


def test_a_variable_the_target_does_not_take_is_an_error_naming_both(tmp_path):
    done = make(tmp_path, "submit", "NET=net8")
    assert done.returncode != 0 and "make submit: NET= is not a variable of submit" in done.stderr
    done = make(tmp_path, "train", "MODELS=2")
    assert "make train: MODELS= is not a variable of train (it is now ENSEMBLE=)" in done.stderr
    assert make(tmp_path, "train", "ENSEMBLE=2").returncode == 0


def test_bench_takes_quick(tmp_path):
    argv = command_line(make(tmp_path, "bench", "QUICK=1"), program="-m benchmarks.bench")
    assert argv == ["--quick"]


def test_make_help_is_the_table(tmp_path):
    done = subprocess.run(["make", "-s", "-C", str(ROOT), "help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for variable, doc in table().items():
        assert re.search(rf"^  {variable}=\S* +{re.escape(doc)}$", out, re.M), variable
    targets = re.findall(r"^([a-z][a-z_-]*):.*## (.*)$", MAKEFILE.read_text(), re.M)
    assert {t for t, _ in targets} >= set(COMMAND_TARGETS) | {"setup", "test", "bench"}
    for target, doc in targets:
        assert re.search(rf"^  make {target} +{re.escape(doc)}$", out, re.M), target


def test_torch_index_installs_the_pinned_torch_from_it(tmp_path):
    pins = [line for line in (ROOT / "requirements.txt").read_text().splitlines()
            if re.match(r"torch\b", line)]
    assert len(pins) == 1 and re.fullmatch(r"torch==[\d.]+", pins[0])   # never unpinned
    fresh = tmp_path / "fresh"

    def setup(*extra):
        done = subprocess.run(["make", "-n", "-C", str(ROOT), f"VENV={fresh}", "setup", *extra],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return [line for line in done.stdout.splitlines() if "pip install" in line]

    plain = setup()
    assert not any("index-url" in line for line in plain)
    index = "https://download.pytorch.org/whl/cpu"
    steps = setup(f"TORCH_INDEX={index}")
    assert f"--no-deps --index-url {index}" in steps[0] and "^torch==" in steps[0]
    assert steps[1:] == plain                  # then the same pinned installs as before
