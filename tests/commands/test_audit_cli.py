"""`kfkd audit` through the CLI on a tiny synthetic folder: the page with its faces, the CSVs,
the cleaned training file and its log; an input file as --clean is one line and exit 2,
with nothing written."""
import base64
import re

import numpy as np
import pandas as pd
import pytest

from kfkd_kit.cli import main
from kfkd_kit.data import load_training, write_kaggle_dataset


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    paths = write_kaggle_dataset(root / "data", n_train=80, n_test=6, seed=3)
    # plant an exact duplicate whose labels agree, and a blank image, in the file itself
    lines = paths["training"].read_bytes().split(b"\n")
    lines[5] = lines[2]                                   # row 4 (0-based) = row 1
    fields = lines[8].split(b",")
    lines[8] = b",".join(fields[:-1] + [b" ".join([b"128"] * 9216)])   # row 7 blank
    paths["training"].write_bytes(b"\n".join(lines))
    return root


@pytest.mark.slow
def test_cli_writes_the_page_the_clean_file_and_its_log(folder, capsys):
    clean = folder / "out" / "clean.csv"
    assert main(["audit", "--data", str(folder / "data"), "--out", str(folder / "reports"),
                 "--clean", str(clean)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    page = out[-1]
    assert page.endswith("audit.html") and "exact duplicate groups: 1" in out
    text = open(page, encoding="utf-8").read()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) >= 2                                # the duplicate and the blank face
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    before, after = load_training(folder / "data"), load_training(clean)
    log = pd.read_csv(folder / "out" / "clean-changes.csv", keep_default_na=False)
    dropped = sorted(log.loc[log["column"] == "", "row"])
    assert dropped == [4, 7]                               # the copy and the blank image
    keep = np.setdiff1d(np.arange(len(before.X)), dropped)
    edited = set(log.loc[log["column"] != "", "row"])
    same = np.array([r not in edited for r in keep])
    assert (after.X == before.X[keep]).all()
    np.testing.assert_array_equal(after.y[same], before.y[keep][same])


def test_an_input_file_as_clean_is_refused_and_nothing_is_written(folder, capsys):
    training = folder / "data" / "training.csv"
    before = training.read_bytes()
    code = main(["audit", "--data", str(folder / "data"), "--out", str(folder / "refused"),
                 "--clean", str(training)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is an input file" in err[0]
    assert training.read_bytes() == before and not (folder / "refused").exists()
