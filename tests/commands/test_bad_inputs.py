"""A corpus of bad inputs, each run through the command line as a user types it.

Every case builds a tiny Kaggle folder from the built-in synthetic data
(``write_kaggle_dataset(folder, n_train=12, n_test=3)``), spoils one thing, runs one
command, and expects: exit status 2, exactly one line on stderr matching the case's
pattern (file, row or line, column, what was expected), no traceback, and no output at
all (no model, JSON or PNG; no submission, temporary or partial file; nothing made in the
output folder, and no synthetic stand-in generated inside the user's folder).

Most cases call ``kfkd_kit.cli.main`` in-process; a few run ``python -m kfkd_kit`` and
``make train`` / ``make submit`` in a subprocess. Inputs that must be accepted (CRLF line
ends, a UTF-8 byte order mark, test images in any order) are at the end.
"""
import gzip
import io
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kfkd_kit import data
from kfkd_kit.cli import main
from kfkd_kit.keypoints import FEATURE_NAMES
from kfkd_kit.data import write_kaggle_dataset

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).resolve().parent.parent if (
    Path(sys.executable).parent / "activate").exists() else None


# --------------------------------------------------------------------------- spoilers

def kaggle(folder):
    """The good folder every case starts from: 12 training rows, 3 test images."""
    write_kaggle_dataset(folder, n_train=12, n_test=3, seed=0)
    for extra in ("test_keypoints.csv", "SampleSubmission.csv"):
        (folder / extra).unlink()
    return folder


def edit(name, change):
    """A spoiler that rewrites file ``name``'s lines (line ends kept) with ``change(lines)``."""
    def spoil(folder):
        path = kaggle(folder) / name
        text = path.read_bytes().decode()
        end = "\r\n" if "\r\n" in text else "\n"
        path.write_bytes((end.join(change(text.split(end)[:-1])) + end).encode())
    return spoil


def cell(row, column, value):
    """Set data row ``row`` (1-based), column number ``column`` (0-based) to ``value``."""
    def change(lines):
        fields = lines[row].split(",")
        fields[column] = value
        lines[row] = ",".join(fields)
        return lines
    return change


def pixels(row, change_words):
    """Rewrite the Image field (the last) of data row ``row``."""
    def change(lines):
        head, image = lines[row].rsplit(",", 1)
        lines[row] = head + "," + " ".join(change_words(image.split(" ")))
        return lines
    return change


def drop_column(name):
    def change(lines):
        k = lines[0].split(",").index(name)
        return [",".join(f for i, f in enumerate(line.split(",")) if i != k) for line in lines]
    return change


def add_column(name, value):
    def change(lines):
        return [name + "," + lines[0]] + [value + "," + line for line in lines[1:]]
    return change


def rename_column(old, new):
    def change(lines):
        lines[0] = ",".join(new if c == old else c for c in lines[0].split(","))
        return lines
    return change


def remove(*names):
    def spoil(folder):
        kaggle(folder)
        for name in names:
            (folder / name).unlink()
    return spoil


def replace_by(name, make_bytes):
    """Remove training.csv; write ``name`` with ``make_bytes(training.csv's bytes)``."""
    def spoil(folder):
        source = kaggle(folder) / "training.csv"
        raw = source.read_bytes()
        source.unlink()
        (folder / name).write_bytes(make_bytes(raw))
    return spoil


def zipped(*members):
    def make(raw):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            for member in members:
                z.writestr(member, raw if member.endswith(".csv") else b"read me\n")
        return buffer.getvalue()
    return make


def truncated(make):
    return lambda raw: make(raw)[: len(make(raw)) // 2]


def empty_file(name):
    def spoil(folder):
        (kaggle(folder) / name).write_bytes(b"")
    return spoil


def header_only(name):
    def spoil(folder):
        path = kaggle(folder) / name
        path.write_bytes(path.read_bytes().split(b"\n", 1)[0] + b"\n")
    return spoil


def nothing(folder):
    kaggle(folder)


def only(*names):
    """A folder with just these files of the good set."""
    def spoil(folder):
        kaggle(folder)
        for path in folder.iterdir():
            if path.name not in names:
                path.unlink()
    return spoil


# --------------------------------------------------------------------------- the corpus
# (id, spoiler, command line, pattern of the one stderr line). In the command line, {data}
# is the spoilt folder, {model} the model to write (train) or the trained one (submit),
# {subs} the submissions folder. Train runs add: --epochs 1 --device cpu --quiet.

FILE_AT = r"kfkd train: error: training\.csv: row 2 \(line 3\)"
CASES = [
    # files and folders
    ("train-no-training-file", only("test.csv", "IdLookupTable.csv"), "train",
     r"kfkd train: error: .*data: no training file \(looked for training\.csv, .*\); "),
    ("train-data-is-a-file", nothing, "train --data {data}/training.csv",
     r"kfkd train: error: .*training\.csv: not a folder"),
    ("submit-data-does-not-exist", nothing, "submit --data {data}/nowhere",
     r"kfkd submit: error: .*nowhere: no such folder"),
    ("submit-data-is-a-file", nothing, "submit --data {data}/test.csv",
     r"kfkd submit: error: .*test\.csv: not a folder"),
    ("submit-no-test-file", remove("test.csv"), "submit",
     r"kfkd submit: error: .*data: no test file \(looked for test\.csv, "),
    ("submit-no-test-file-nor-training", remove("test.csv", "training.csv"), "submit",
     r"kfkd submit: error: .*data: no test file \(looked for test\.csv, "),
    ("train-only-lookup-file", only("IdLookupTable.csv"), "train",
     r"kfkd train: error: .*data: no training file \(looked for training\.csv, .*\); "
     r"the folder holds IdLookupTable\.csv, so the built-in synthetic data is not used"),
    ("submit-empty-folder", only(), "submit",
     r"kfkd submit: error: .*data: no test file \(looked for test\.csv, "),
    ("submit-no-lookup-file", remove("IdLookupTable.csv"), "submit",
     r"kfkd submit: error: .*data: no IdLookupTable file \(looked for IdLookupTable\.csv, "),
    # empty files
    ("train-empty-file", empty_file("training.csv"), "train",
     r"kfkd train: error: training\.csv: line 1: the file is empty; expected a header with "
     r"Kaggle's 30 keypoint columns"),
    ("train-header-only", header_only("training.csv"), "train",
     r"kfkd train: error: training\.csv: no data rows after the header \(line 1\)"),
    ("submit-empty-test", empty_file("test.csv"), "submit",
     r"kfkd submit: error: test\.csv: line 1: the file is empty; expected a header with ImageId and Image"),
    ("submit-header-only-lookup", header_only("IdLookupTable.csv"), "submit",
     r"kfkd submit: error: IdLookupTable\.csv: no data rows after the header \(line 1\)"),
    # the header
    ("train-missing-keypoint-column", edit("training.csv", drop_column("nose_tip_x")), "train",
     r"kfkd train: error: training\.csv: line 1 \(header\), column nose_tip_x: missing; "),
    ("train-extra-column", edit("training.csv", add_column("Id", "7")), "train",
     r"kfkd train: error: training\.csv: line 1 \(header\), column 'Id' \(position 1\): "
     r"not expected here"),
    ("train-misspelled-column",
     edit("training.csv", rename_column("left_eye_center_x", "left_eye_centre_x")), "train",
     r"kfkd train: error: training\.csv: line 1 \(header\), column 'left_eye_centre_x' "
     r"\(position 1\): not expected here"),
    # the Image field
    ("train-9215-pixels", edit("training.csv", pixels(2, lambda w: w[:-1])), "train",
     FILE_AT + r", column Image: expected 9216 pixel values, got 9215"),
    ("train-9217-pixels", edit("training.csv", pixels(2, lambda w: w + ["7"])), "train",
     FILE_AT + r", column Image: expected 9216 pixel values, got 9217"),
    ("train-non-numeric-pixel", edit("training.csv", pixels(2, lambda w: w[:9] + ["x7"] + w[10:])),
     "train", FILE_AT + r", column Image: pixel 10 is 'x7', expected an integer 0\.\.255"),
    ("train-negative-pixel", edit("training.csv", pixels(2, lambda w: ["-1"] + w[1:])), "train",
     FILE_AT + r", column Image: pixel 1 is '-1', expected an integer 0\.\.255"),
    ("train-pixel-256", edit("training.csv", pixels(2, lambda w: w[:-1] + ["256"])), "train",
     FILE_AT + r", column Image: pixel 9216 is '256', expected an integer 0\.\.255"),
    ("submit-test-pixel-256", edit("test.csv", pixels(3, lambda w: w[:4] + ["256"] + w[5:])),
     "submit", r"kfkd submit: error: test\.csv: row 3 \(line 4\), column Image: pixel 5 is '256', expected an integer"),
    # keypoints
    ("train-keypoint-above-96", edit("training.csv", cell(2, 1, "96.5")), "train",
     FILE_AT + r", column left_eye_center_y: 96\.5 is outside \[0, 96\]"),
    ("train-keypoint-below-0", edit("training.csv", cell(2, 20, "-0.25")), "train",
     FILE_AT + r", column nose_tip_x: -0\.25 is outside \[0, 96\]"),
    ("train-keypoint-non-numeric", edit("training.csv", cell(2, 0, "4O.5")), "train",
     FILE_AT + r", column left_eye_center_x: expected a number or nothing, got '4O\.5'"),
    # containers
    ("train-zip-without-csv", replace_by("training.zip", zipped("readme.txt")), "train",
     r"kfkd train: error: training\.zip: expected one CSV file inside, found readme\.txt"),
    ("train-zip-with-two-csv", replace_by("training.zip", zipped("a.csv", "b.csv")), "train",
     r"kfkd train: error: training\.zip: expected one CSV file inside, found a\.csv, b\.csv"),
    ("train-truncated-zip", replace_by("training.zip", truncated(zipped("training.csv"))), "train",
     r"kfkd train: error: training\.zip: not a readable zip file"),
    ("train-truncated-gzip", replace_by("training.csv.gz", truncated(gzip.compress)), "train",
     r"kfkd train: error: training\.csv\.gz: not a readable gzip file"),
    # test.csv and IdLookupTable.csv
    ("submit-duplicate-image-id", edit("test.csv", cell(3, 0, "1")), "submit",
     r"kfkd submit: error: test\.csv: row 3 \(line 4\), column ImageId: ImageId 1 appears "
     r"again \(first on row 1 \(line 2\)\)"),
    ("submit-lookup-unknown-image", edit("IdLookupTable.csv", cell(2, 1, "99")), "submit",
     r"kfkd submit: error: IdLookupTable\.csv: row 2, column ImageId: image 99 "
     r"is not in test\.csv"),
    ("submit-lookup-unknown-feature", edit("IdLookupTable.csv", cell(2, 2, "nose_x")), "submit",
     r"kfkd submit: error: IdLookupTable\.csv: line 3, column FeatureName: expected one of "
     r"Kaggle's 30 keypoint column names, got 'nose_x'"),
    ("submit-lookup-duplicate-row-id", edit("IdLookupTable.csv", cell(3, 0, "1")), "submit",
     r"kfkd submit: error: IdLookupTable\.csv: line 4, column RowId: RowId 1 appears again "
     r"\(first on line 2\)"),
    # arguments
    ("train-unknown-net", nothing, "train --net net99",
     r"kfkd train: error: argument --net: invalid choice: 'net99' \(choose from .*net1"),
    ("train-epochs-0", nothing, "train --epochs 0",
     r"kfkd train: error: argument --epochs: expected a positive integer, got '0'"),
    ("train-epochs-negative", nothing, "train --epochs -1",
     r"kfkd train: error: argument --epochs: expected a positive integer, got '-1'"),
    ("train-epochs-not-a-number", nothing, "train --epochs x",
     r"kfkd train: error: argument --epochs: expected a positive integer, got 'x'"),
]


def command(case_line, folder, model, subs):
    """The argv of a case: its line with the folders filled in, plus the usual options."""
    words = case_line.split()
    verb = words[0]
    if "--data" not in words:
        words += ["--data", "{data}"]
    if verb == "train":
        if "--epochs" not in words:
            words = words[:1] + ["--epochs", "1"] + words[1:]
        words += ["--device", "cpu", "--quiet", "--model", "{model}"]
    else:
        words += ["--model", "{model}", "--out", "{subs}"]
    return [w.format(data=folder, model=model, subs=subs) for w in words]


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    folder = kaggle(root / "data")
    model = root / "m.joblib"
    assert main(["train", "--data", str(folder), "--epochs", "1", "--device", "cpu",
                 "--quiet", "--model", str(model)]) == 0
    return model


def run_in_process(argv, capsys):
    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as exit_:            # argparse's errors
        status = exit_.code
    captured = capsys.readouterr()
    return status, captured.err


def assert_one_clear_line(status, err, pattern):
    assert status == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert re.match(pattern, lines[0]), lines[0]


def assert_nothing_written(tmp_path, folder, outputs):
    for out in outputs:
        assert not out.exists() or list(out.iterdir()) == [], sorted(out.iterdir())
    if folder.is_dir():
        assert not (folder / "synthetic").exists()
        assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
@pytest.mark.parametrize("case_id, spoil, line, pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_written(case_id, spoil, line, pattern,
                                                          tmp_path, capsys, request):
    folder = tmp_path / "data"
    spoil(folder)
    outputs = [tmp_path / "out", tmp_path / "subs"]
    if line.startswith("submit"):
        model = request.getfixturevalue("trained_model")
    else:
        model = tmp_path / "out" / "m.joblib"
    argv = command(line, folder, model, tmp_path / "subs")
    status, err = run_in_process(argv, capsys)
    assert_one_clear_line(status, err, pattern)
    assert_nothing_written(tmp_path, folder, outputs)


# --------------------------------------------------------------------------- other front doors

def env():
    return dict(os.environ, PYTHONPATH=str(ROOT))


def kfkd_lines(stderr):
    """stderr less make's own lines ("make: *** ... Error 2", entering/leaving directory)."""
    return [line for line in stderr.strip().splitlines() if not line.startswith("make")]


SUBPROCESS_CASES = [c for c in CASES if c[0] in (
    "train-empty-file", "submit-test-pixel-256", "train-unknown-net")]


@pytest.mark.slow
@pytest.mark.parametrize("case_id, spoil, line, pattern", SUBPROCESS_CASES,
                         ids=[c[0] for c in SUBPROCESS_CASES])
def test_bad_input_through_python_m_kfkd_kit(case_id, spoil, line, pattern, tmp_path, request):
    folder = tmp_path / "data"
    spoil(folder)
    model = (request.getfixturevalue("trained_model") if line.startswith("submit")
             else tmp_path / "out" / "m.joblib")
    argv = command(line, folder, model, tmp_path / "subs")
    done = subprocess.run([sys.executable, "-m", "kfkd_kit", *argv], capture_output=True,
                          text=True, env=env(), cwd=tmp_path, timeout=120)
    assert_one_clear_line(done.returncode, done.stderr, pattern)
    assert_nothing_written(tmp_path, folder, [tmp_path / "out", tmp_path / "subs"])


def make(*args, cwd):
    """``make`` in the repository with this interpreter's venv, never re-installing it."""
    venv = Path(sys.prefix)
    return subprocess.run(["make", "-s", "-C", str(ROOT), f"VENV={venv}", "-o",
                           f"{venv}/.installed", *args], capture_output=True, text=True,
                          env=env(), cwd=cwd, timeout=120)


needs_make = pytest.mark.skipif(
    not (Path(sys.prefix) / ".installed").exists() or subprocess.run(
        ["which", "make"], capture_output=True).returncode != 0,
    reason="needs make and a venv built by `make setup`")


@pytest.mark.slow
@needs_make
def test_make_train_on_a_bad_file(tmp_path):
    folder = tmp_path / "data"
    edit("training.csv", pixels(2, lambda w: w[:9] + ["x7"] + w[10:]))(folder)
    done = make("train", f"DATA={folder}", f"MODEL={tmp_path / 'out' / 'm.joblib'}",
                "EPOCHS=1", cwd=tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = kfkd_lines(done.stderr)
    assert len(lines) == 1 and re.match(
        FILE_AT + r", column Image: pixel 10 is 'x7', expected an integer 0\.\.255", lines[0])
    assert_nothing_written(tmp_path, folder, [tmp_path / "out"])


@pytest.mark.slow
@needs_make
def test_make_submit_on_a_bad_lookup(tmp_path, trained_model):
    folder = tmp_path / "data"
    edit("IdLookupTable.csv", cell(2, 2, "nose_x"))(folder)
    done = make("submit", f"DATA={folder}", f"MODEL={trained_model}",
                f"OUT={tmp_path / 'subs'}", cwd=tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = kfkd_lines(done.stderr)
    assert len(lines) == 1 and re.match(
        r"kfkd submit: error: IdLookupTable\.csv: line 3, column FeatureName: ", lines[0])
    assert_nothing_written(tmp_path, folder, [tmp_path / "subs"])


# --------------------------------------------------------------------------- accepted inputs

def crlf(text: bytes) -> bytes:
    return text.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def lf(text: bytes) -> bytes:
    return text.replace(b"\r\n", b"\n")


def bom(text: bytes) -> bytes:
    return b"\xef\xbb\xbf" + text


VARIANTS = {"crlf": crlf, "lf": lf, "bom": bom, "bom-crlf": lambda t: bom(crlf(t)),
            "bom-lf": lambda t: bom(lf(t))}


def submit(folder, model, subs, capsys):
    capsys.readouterr()
    assert main(["submit", "--data", str(folder), "--model", str(model),
                 "--out", str(subs)]) == 0
    return pd.read_csv(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_crlf_and_byte_order_mark_are_accepted_with_the_same_arrays(variant, tmp_path, capsys,
                                                                     trained_model):
    """CRLF line ends and a UTF-8 byte order mark (Excel's "CSV UTF-8") are accepted in all
    three files and give exactly the arrays, lookup and submission of the plain files."""
    plain = kaggle(tmp_path / "plain")
    changed = kaggle(tmp_path / variant)
    for name in ("training.csv", "test.csv", "IdLookupTable.csv"):
        path = changed / name
        path.write_bytes(VARIANTS[variant](path.read_bytes()))
    a, b = data.load_training(plain), data.load_training(changed)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    a, b = data.load_test(plain), data.load_test(changed)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.image_ids, b.image_ids)
    pd.testing.assert_frame_equal(data.load_lookup(plain), data.load_lookup(changed))
    pd.testing.assert_frame_equal(submit(plain, trained_model, tmp_path / "s1", capsys),
                                  submit(changed, trained_model, tmp_path / "s2", capsys))


@pytest.mark.slow
def test_train_accepts_crlf_and_a_byte_order_mark(tmp_path, capsys):
    folder = kaggle(tmp_path / "data")
    path = folder / "training.csv"
    path.write_bytes(bom(crlf(path.read_bytes())))
    model = tmp_path / "out" / "m.joblib"
    assert main(["train", "--data", str(folder), "--epochs", "1", "--device", "cpu",
                 "--quiet", "--model", str(model)]) == 0
    assert model.is_file() and capsys.readouterr().err == ""


@pytest.mark.slow
def test_test_images_in_any_order_give_the_same_submission(tmp_path, capsys, trained_model):
    """Accepted, not rejected: test.csv's rows are matched to IdLookupTable.csv by ImageId
    (which must be unique: a repeated ImageId is an error), so their order carries no
    meaning and a reordered or re-assembled test.csv still gives every lookup row the
    prediction of its own image. The submission equals the one of the ordered file."""
    plain = kaggle(tmp_path / "plain")
    shuffled = kaggle(tmp_path / "shuffled")
    lines = (shuffled / "test.csv").read_text().splitlines()
    (shuffled / "test.csv").write_text("\n".join([lines[0], lines[3], lines[1], lines[2]]) + "\n")
    assert data.load_test(shuffled).image_ids.tolist() == [3, 1, 2]
    a = submit(plain, trained_model, tmp_path / "s1", capsys)
    b = submit(shuffled, trained_model, tmp_path / "s2", capsys)
    assert a["RowId"].tolist() == b["RowId"].tolist()
    np.testing.assert_allclose(a["Location"], b["Location"], atol=1e-5)


# --------------------------------------------------------------------------- the user's files, never a stand-in

@pytest.mark.slow
def test_submit_reads_the_users_test_and_lookup_without_a_training_file(tmp_path, capsys,
                                                                        trained_model):
    folder = tmp_path / "data"
    write_kaggle_dataset(folder, n_train=0, n_test=5, seed=3)
    for name in ("training.csv", "test_keypoints.csv", "SampleSubmission.csv"):
        (folder / name).unlink()
    table = submit(folder, trained_model, tmp_path / "subs", capsys)
    assert table["RowId"].tolist() == data.load_lookup(folder)["RowId"].tolist()
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "IdLookupTable.csv", "test.csv"]                     # nothing synthetic made


@pytest.mark.slow
def test_train_on_the_default_folder_with_no_kaggle_file_says_note_and_uses_synthetic(
        tmp_path, monkeypatch, capsys):
    from kfkd_kit.data import synthetic_dataset
    monkeypatch.setattr(synthetic_dataset, "write_kaggle_dataset",
                        lambda folder, seed, **kw: write_kaggle_dataset(folder, n_train=12,
                                                                        n_test=3, seed=seed, **kw))
    monkeypatch.chdir(tmp_path)                    # the default, data/, of a fresh clone
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a Kaggle file\n")
    model = tmp_path / "out" / "m.joblib"
    assert main(["train", "--epochs", "1", "--device", "cpu",
                 "--quiet", "--model", str(model)]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if "NOTE" in line.upper()]
    assert len(notes) == 1 and notes[0].startswith("NOTE: no Kaggle training file in ")
    assert "SYNTHETIC" in notes[0]
    assert data.has_kaggle_data(folder / "synthetic") and model.is_file()
