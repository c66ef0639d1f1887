"""Training: data -> fitted Pipeline -> models/<net>.joblib + JSON + PNGs."""
from __future__ import annotations

import platform
import time
from pathlib import Path

import joblib
import numpy as np

from . import configs, data, plots, synthetic
from .estimator import default_device
from ._atomic import atomic_write, write_json
from .metrics import masked_rmse_px
from .specialists import Specialists

SYNTHETIC_FOLDER = "synthetic"


def resolve_data_dir(folder, say=print) -> Path:
    """The folder holding Kaggle's files: ``folder`` itself when it has a training file,
    else the built-in synthetic data set in ``folder/synthetic`` (generated once)."""
    folder = Path(folder)
    if data.has_kaggle_data(folder):
        return folder
    fallback = folder / SYNTHETIC_FOLDER
    if not data.has_kaggle_data(fallback):
        say(f"no Kaggle training file in {folder}/: generating the built-in synthetic "
            f"faces into {fallback}/")
        synthetic.write_kaggle_dataset(fallback, seed=0)
    else:
        say(f"no Kaggle training file in {folder}/: using the built-in synthetic faces in {fallback}/")
    return fallback


def validation_rows(pipeline, n_rows):
    """Row indices of the net's own validation split (the one its epoch table reports)."""
    net = pipeline.named_steps["net"]
    if net.train_split is None:
        return None
    dataset = net.get_dataset(np.zeros((n_rows, 1), np.float32))
    _, valid = net.train_split(dataset)
    return np.asarray(valid.indices)


def validation_rmse(model, X, y):
    """RMSE px over the labelled values of the rows the model held out for validation.

    For specialists, each one's own held-out rows and columns count (pooled), as each
    specialist splits the rows that label its group. None when nothing was held out.
    """
    parts = model.models_.items() if isinstance(model, Specialists) else [(None, model)]
    true, predicted = [], []
    for name, pipeline in parts:
        rows = np.arange(len(X)) if name is None else model.rows_[name]
        held_out = validation_rows(pipeline, len(rows))
        if held_out is None:
            return None
        rows = rows[held_out]
        target = y[rows] if name is None else y[np.ix_(rows, model.columns_[name])]
        true.append(target.ravel())
        predicted.append(pipeline.predict(X[rows]).ravel())
    return masked_rmse_px(np.concatenate(true), np.concatenate(predicted))


def fit_and_score(model, X, y):
    """Fit; return (seconds, valid RMSE px over labelled values, or None without a split)."""
    start = time.perf_counter()
    model.fit(X, y)
    return time.perf_counter() - start, validation_rmse(model, X, y)


def histories(model) -> dict:
    """{name: skorch history} of the nets inside a fitted model."""
    return {name: net.history for name, net in _nets(model).items()}


def precisions_used(model):
    """What the fitted nets computed in ("bf16", "fp32", ...): one value, or a dict of them."""
    used = {name: getattr(net, "precision_", None) for name, net in _nets(model).items()}
    values = set(used.values())
    return values.pop() if len(values) == 1 else used


def _nets(model) -> dict:
    """{name: fitted skorch net} inside a fitted model."""
    if isinstance(model, Specialists):
        return {name: p.named_steps["net"] for name, p in model.models_.items()}
    return {"net": model.named_steps["net"]}


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), for results tables."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "?"


def library_versions() -> dict:
    import pandas
    import skorch
    import sklearn
    import torch
    return {"python": platform.python_version(), "torch": torch.__version__,
            "skorch": skorch.__version__, "scikit-learn": sklearn.__version__,
            "numpy": np.__version__, "pandas": pandas.__version__}


def save_model(pipeline, path, metadata: dict) -> tuple[Path, Path]:
    """joblib the whole fitted pipeline and write a JSON beside it, both atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        joblib.dump(pipeline, f)
    return path, write_json(path.with_suffix(".json"), metadata)


def train(net="net1", data_dir="data", model_path=None, epochs=None, seed=0, device=None,
          early_stopping=None, verbose=1, base=None, precision="auto", say=print) -> dict:
    """Train a named configuration; save model, JSON and PNGs. Returns the metadata dict."""
    config = configs.get_config(net)
    folder = resolve_data_dir(data_dir, say)
    training = data.load_training(folder, complete_only=config.complete_only)
    say(f"training {net} ({config.description}) on {len(training.X)} rows of "
        f"{training.source}")
    model = configs.build(net, max_epochs=epochs, device=device, seed=seed,
                          verbose=verbose, early_stopping=early_stopping, base=base,
                          precision=precision)
    seconds, rmse = fit_and_score(model, training.X, training.y)
    nets = histories(model)
    first = next(iter(nets.values()))
    model_path = Path(model_path or f"models/{net}.joblib")
    metadata = {
        "net": net,
        "description": config.description,
        "metrics": {
            "valid_rmse_px": rmse,
            "epochs_run": {name: len(h) for name, h in nets.items()} if len(nets) > 1 else len(first),
            "final_train_loss": first[-1, "train_loss"],
            "train_seconds": round(seconds, 3),
        },
        "params": {"seed": seed, "device": device or default_device(),
                   "precision": precision, "precision_used": precisions_used(model),
                   "lr": config.lr,
                   "momentum": None if config.optimizer == "adamw" else config.momentum,
                   "optimizer": config.optimizer, "weight_decay": config.weight_decay,
                   "one_cycle": config.one_cycle, "augment": config.augment,
                   "weight_average": config.weight_average,
                   "batch_size": config.batch_size, "max_epochs": epochs or config.max_epochs,
                   "early_stopping": early_stopping, "flip": config.flip,
                   "base": None if base is None else str(base),
                   "lr_schedule": config.lr_schedule,
                   "momentum_schedule": config.momentum_schedule},
        "data": {"source": str(training.source), "fingerprint": training.fingerprint,
                 "rows": len(training.X), "complete_only": config.complete_only,
                 "labelled_values": int(np.isfinite(training.y).sum())},
        "versions": library_versions(),
    }
    save_model(model, model_path, metadata)
    figures = write_figures(model, folder, model_path, title=net)
    metadata["figures"] = [str(p) for p in figures]
    say(f"figures: {', '.join(metadata['figures'])}")
    shown = "n/a (no validation split)" if rmse is None else f"{rmse:.3f} px"
    say(f"valid RMSE {shown}; model saved to {model_path}")
    return metadata


def write_figures(model, data_folder, model_path, title="") -> list[Path]:
    model_path = Path(model_path)
    stem = model_path.with_suffix("")
    figures = [plots.learning_curves(histories(model), f"{stem}-learning-curves.png", title)]
    if data.find_file(data_folder, "test") is not None:
        test = data.load_test(data_folder)
        sample = test.X[:16]
        figures.append(plots.prediction_grid(sample, model.predict(sample),
                                             f"{stem}-test-predictions.png",
                                             f"{title}: test predictions"))
    return figures

