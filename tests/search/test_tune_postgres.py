"""`kfkd tune --storage postgresql://...`: two worker processes on one study in a real
PostgreSQL server that the test starts (and stops), and the one-line errors for a server that
cannot be reached and a missing driver. Tiny synthetic data, 1 epoch of net8 per trial.

The server runs as the `postgres` user when the tests run as root (initdb and postgres refuse
root), from a data folder in a fresh temporary folder that user owns, on 127.0.0.1 and a free
port, with trust authentication. Without PostgreSQL's server binaries the server test is
skipped; CI (.ci/run) installs Debian's package first.
"""
import glob
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from kfkd_kit.cli import main
from kfkd_kit.data import write_kaggle_dataset
from kfkd_kit.search import study as tune_study

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--device", "cpu", "--precision", "fp32"]
TRIAL_LINE = re.compile(r"^trial (\d+) \[\d+/\d+\]: ", re.M)
NET8_START = {"width": 16, "dropout": 0.1, "rotate": 12.0, "scale": 0.08, "shift": 3.0,
              "weight_decay": 0.05, "lr": 0.006}


def find_pg_ctl():
    """PostgreSQL's pg_ctl: on PATH, or the newest of Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve()
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                      key=lambda p: int(re.search(r"/(\d+)/bin/", p).group(1)))
    return Path(versions[-1]) if versions else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tune-pg") / "data"
    write_kaggle_dataset(folder, n_train=40, n_test=4, seed=2)
    return folder


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server of its own, stopped and removed afterwards; yields a URL maker."""
    pg_ctl = find_pg_ctl()
    if pg_ctl is None:
        pytest.skip("no PostgreSQL server: neither pg_ctl on PATH nor "
                    "/usr/lib/postgresql/*/bin/pg_ctl (Debian's postgresql package)")
    initdb = pg_ctl.parent / "initdb"
    as_user = []
    base = Path(tempfile.mkdtemp(prefix="kfkd-pg-"))   # /tmp: reachable by the server's user
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_port()

    def run(*command):
        done = subprocess.run(as_user + [str(c) for c in command], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, (command, done.stdout, done.stderr)

    started = False
    try:
        run(initdb, "-D", data, "-A", "trust", "-U", "kfkd", "-E", "UTF8", "--no-sync",
            "--no-instructions")
        run(pg_ctl, "-D", data, "-l", base / "server.log", "-w", "-t", "30", "-o",
            f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off", "start")
        started = True
        import psycopg2
        connection = psycopg2.connect(host="127.0.0.1", port=port, user="kfkd",
                                      dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE tune")
        connection.close()
        yield lambda db="tune": f"postgresql://kfkd@127.0.0.1:{port}/{db}"
    finally:
        if started:
            run(pg_ctl, "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def table_rows(path):
    lines = [line for line in Path(path).read_text().splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


@pytest.mark.slow
def test_two_worker_processes_share_one_postgresql_study(faces, postgres, tmp_path):
    url, out = postgres(), tmp_path / "cv"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), KFKD_PROGRESS="0")
    command = [sys.executable, "-m", "kfkd_kit", "tune", "--data", str(faces), "--trials", "4",
               "--epochs", "1", "--storage", url, "--study", "shared", "--out", str(out), *FAST]
    workers = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        results = [w.communicate(timeout=300) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    for worker, (stdout, stderr) in zip(workers, results):
        assert worker.returncode == 0, stderr
        assert f"study 'shared' in {url}" in stdout
    ran = [set(map(int, TRIAL_LINE.findall(stdout))) for stdout, _ in results]
    assert not ran[0] & ran[1]                          # no trial run twice

    study = optuna.load_study(study_name="shared", storage=tune_study.open_storage(url)[0])
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(study.trials) == len(finished)           # nothing failed or left running
    assert {t.number for t in finished} == ran[0] | ran[1]
    assert 4 <= len(finished) <= 5                      # the total, not each: one in flight on top
    assert sorted(t.number for t in study.trials) == list(range(len(study.trials)))
    assert study.trials[0].params == NET8_START          # the baseline, run by one worker
    for worker, numbers in zip(workers, ran):           # each trial ran where it was reported
        assert {t.number for t in study.trials
                if t.user_attrs["worker"].endswith(f":{worker.pid}")} == numbers
    assert study.user_attrs["kfkd"]["net"] == "net8"    # the objective, recorded once

    # the files written at the end agree with the study in the database
    rows = table_rows(out / "tune-shared.md")
    assert [(int(r[0]), r[1]) for r in rows] == [(t.number, t.state.name) for t in study.trials]
    for row, trial in zip(rows, study.trials):
        if trial.state == TrialState.COMPLETE:
            assert float(row[2]) == pytest.approx(trial.value, abs=1e-4)
    best = json.loads((out / "tune-shared-best.json").read_text())
    assert best["trial"] == study.best_trial.number and best["rmse_px"] == study.best_value
    assert best["finished_trials"] == len(finished) and best["storage"] == url
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_a_server_that_cannot_be_reached_is_one_line_without_the_password(faces, tmp_path,
                                                                          capsys):
    url = f"postgresql://kfkd:s3cret@127.0.0.1:{free_port()}/tune"   # nothing listens there
    out = tmp_path / "cv"
    assert main(["tune", "--data", str(faces), "--out", str(out), "--trials", "1",
                 "--epochs", "1", "--storage", url, *FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kfkd tune: error: --storage postgresql://kfkd:***@127.0.0.1:")
    assert err.count("\n") == 1 and "s3cret" not in err
    assert "cannot reach the database" in err and "is the server running" in err
    assert not out.exists() or not list(out.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("url", ["postgresql://kfkd:s3cret@127.0.0.1/tune",
                                 "postgresql+psycopg2://kfkd:s3cret@127.0.0.1/tune"])
def test_a_missing_driver_names_what_to_install(faces, tmp_path, capsys, monkeypatch, url):
    for module in ("psycopg", "psycopg2"):
        monkeypatch.setitem(sys.modules, module, None)   # import psycopg2: ImportError
    out = tmp_path / "cv"
    assert main(["tune", "--data", str(faces), "--out", str(out), "--trials", "1",
                 "--epochs", "1", "--storage", url, *FAST]) == 2
    err = capsys.readouterr().err
    scheme = url.split("://")[0]
    assert err.startswith(f"kfkd tune: error: --storage {scheme}://kfkd:***@127.0.0.1/tune: "
                          "its database driver is not installed (")
    assert err.count("\n") == 1 and "s3cret" not in err
    assert "pip install psycopg2-binary" in err
    assert not out.exists() or not list(out.iterdir())
