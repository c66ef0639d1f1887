"""Seeded runs on synthetic data whose numbers must not change when code is only moved:
net1, net3, net8, the specialists and a 2-fold cv, each through the command line.

    python -m benchmarks.seeded_runs OUT.json      # then diff two such files

Each run's JSON metrics (RMSE, final train loss), and a digest of its model's predictions
on the synthetic test images, go into OUT.json. Run it on two commits (e.g. in a git
worktree) and compare: a refactor that keeps behaviour gives identical files.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

RUNS = {   # name -> kfkd arguments (after --data and --model)
    "net1": ["train", "--net", "net1", "--epochs", "6"],
    "net3": ["train", "--net", "net3", "--epochs", "2"],
    "net8": ["train", "--net", "net8", "--epochs", "3"],
    "specialists": ["train", "--net", "specialists", "--epochs", "2"],
}


def _digest(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()[:16]


def main(out):
    from kfkd_kit.cli import main as kfkd
    from kfkd_kit.data import load_test
    from kfkd_kit.utils.modelfile import load_model
    from kfkd_kit.data import write_kaggle_dataset

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        write_kaggle_dataset(data, n_train=240, n_test=16, seed=0)
        test = load_test(data)
        for name, args in RUNS.items():
            model = tmp / f"{name}.joblib"
            with contextlib.redirect_stdout(io.StringIO()):
                assert kfkd([*args, "--data", str(data), "--model", str(model), "--quiet",
                             "--device", "cpu"]) == 0
            record = json.loads(model.with_suffix(".json").read_text())
            metrics = record["metrics"]
            results[name] = {"valid_rmse_px": metrics.get("valid_rmse_px"),
                             "final_train_loss": metrics.get("final_train_loss"),
                             "predictions": _digest(load_model(model).predict(test.X))}
        with contextlib.redirect_stdout(io.StringIO()):
            assert kfkd(["cv", "--net", "net1", "--epochs", "3", "--folds", "2", "--data", str(data),
                         "--out", str(tmp / "cv"), "--device", "cpu"]) == 0
        summary = json.loads(next((tmp / "cv").glob("net1-*.json")).read_text())   # not oof-*
        results["cv net1"] = {"per_fold_rmse_px": summary["per_fold_rmse_px"]}
    Path(out).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(json.dumps(results, indent=2, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "seeded-runs.json")
