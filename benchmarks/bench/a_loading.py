"""a. Loading a Kaggle-size training.csv (7049 rows, synthetic, generated once into
build/bench/): kfkd's loader (every load parses the file) against the tutorial's
``pandas.read_csv`` + ``np.fromstring`` per row, each reader in a fresh subprocess so that
its time is cold and its peak resident memory its own.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from kfkd_kit.data import synthetic_dataset

from .common import DATA_DIR, KAGGLE_COMPLETE, KAGGLE_ROWS, ROOT


def kaggle_size_csv(rows=KAGGLE_ROWS):
    """build/bench/kaggle<rows>/training.csv: synthetic, Kaggle's layout and missing rate."""
    folder = DATA_DIR / f"kaggle{rows}"
    path = folder / "training.csv"
    if not path.is_file():
        print(f"  generating {path} ({rows} rows) ...", flush=True)
        missing = 1 - KAGGLE_COMPLETE / KAGGLE_ROWS
        synthetic_dataset.write_kaggle_dataset(folder, n_train=rows, n_test=0, seed=0,
                                       missing_fraction=missing)
    return folder


_CHILD = textwrap.dedent("""
    import json, resource, sys, time, warnings
    sys.path.insert(0, {root!r})
    import numpy as np
    import pandas as pd
    from kfkd_kit import data
    def status_mb(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    def rss_mb():
        return status_mb("VmRSS")
    folder = {folder!r}
    before = rss_mb()
    start = time.perf_counter()
    if {what!r} == "tutorial":
        warnings.simplefilter("ignore")
        df = pd.read_csv(folder + "/training.csv")
        df["Image"] = df["Image"].apply(lambda im: np.fromstring(im, sep=" "))
        X = np.vstack(df["Image"].values) / 255.
        X = X.astype(np.float32)
        y = df[df.columns[:-1]].values
        y = ((y - 48) / 48).astype(np.float32)
    else:
        d = data.load_training(folder)
        X, y = d.X, d.y
    seconds = time.perf_counter() - start
    # VmHWM, not ru_maxrss: on Linux ru_maxrss carries the parent's peak across fork + exec
    peak = status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({{"seconds": seconds, "peak_mb": peak, "before_mb": before,
                      "shape": list(X.shape), "dtype": str(X.dtype)}}))
""")


def load_in_child(folder, what):
    code = _CHILD.format(root=str(ROOT), folder=str(folder), what=what)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(table, opts):
    quick = opts.quick
    print("a. loading", flush=True)
    folder = kaggle_size_csv()
    size_mb = (folder / "training.csv").stat().st_size / 2 ** 20
    rounds = 1 if quick else 2
    tutorial, cold = [], []
    for _ in range(rounds):
        tutorial.append(load_in_child(folder, "tutorial"))
        cold.append(load_in_child(folder, "kfkd"))
    best = lambda runs: min(runs, key=lambda r: r["seconds"])
    t, c = best(tutorial), best(cold)
    table.add(f"load training.csv ({KAGGLE_ROWS} rows, {size_mb:.0f} MB), cold, s",
              c["seconds"], t["seconds"], c["seconds"] / t["seconds"], "≤ 1.5 s", c["seconds"] <= 1.5)
    tutorial_peak = max(r["peak_mb"] for r in tutorial)
    peak = max(r["peak_mb"] for r in cold)
    table.add("peak resident memory of the loading process, cold, MB", peak,
              tutorial_peak, peak / tutorial_peak, "≤ 1 GB", peak <= 1024)
    table.note(f"Each reader in a fresh `python -c` subprocess (best of {rounds}); baseline = "
               "the tutorial's `read_csv` + `np.fromstring(sep=' ')` per row + `np.vstack` / 255; "
               f"kfkd X is {c['dtype']} {tuple(c['shape'])}. Peak = VmHWM of the process "
               f"(interpreter and imports included: {c['before_mb']:.0f} MB before loading).")
