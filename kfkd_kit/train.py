"""Training: data -> fitted estimator -> models/<net>.joblib + JSON + PNGs."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import configs, data, plots, provenance
from .metrics import masked_rmse_px
from .modelfile import save_model
from .specialists import Specialists


def validation_rmse(model, X, y):
    """RMSE px over the labelled values of the rows the model held out for validation
    (the rows its epoch table reports on).

    For specialists, each one's own held-out rows and columns count (pooled), as each
    specialist splits the rows that label its group. None when nothing was held out.
    """
    parts = model.models_.items() if isinstance(model, Specialists) else [(None, model)]
    true, predicted = [], []
    for name, pipeline in parts:
        rows = np.arange(len(X)) if name is None else model.rows_[name]
        target = y[rows] if name is None else y[np.ix_(rows, model.columns_[name])]
        held_out = configs.inner_net(pipeline).validation_rows(target)
        if held_out is None:
            return None
        true.append(target[held_out].ravel())
        predicted.append(pipeline.predict(X[rows[held_out]]).ravel())
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


def data_record(training, estimator) -> dict:
    """What a JSON says about the training data: file, fingerprint, rows, and the rows the
    estimator trains on (all, or the complete ones: its own ``complete_only``)."""
    net = configs.inner_net(estimator)
    return {"source": str(training.source), "fingerprint": training.fingerprint,
            "rows": len(training.X), "complete_only": bool(net.complete_only),
            "rows_trained": int(len(net.fit_rows(training.y))),
            "labelled_values": int(np.isfinite(training.y).sum())}


def train(estimator, data_dir="data", model_path=None, name="custom", description="",
          say=print) -> dict:
    """Fit ``estimator`` (``configs.build(name, ...)``) on the training data in
    ``data_dir``; save model, JSON and PNGs. Returns the metadata dict."""
    folder = data.resolve_data_dir(data_dir, say)
    training = data.load_training(folder)
    record = data_record(training, estimator)
    rows = (f"{record['rows_trained']} complete rows of {record['rows']}"
            if record["complete_only"] else f"{record['rows']} rows")
    say(f"training {name}" + (f" ({description})" if description else "")
        + f" on {rows} of {training.source}")
    seconds, rmse = fit_and_score(estimator, training.X, training.y)
    nets = histories(estimator)
    first = next(iter(nets.values()))
    model_path = Path(model_path or f"models/{name}.joblib")
    metadata = {
        "net": name,
        "description": description,
        "metrics": {
            "valid_rmse_px": rmse,
            "epochs_run": {n: len(h) for n, h in nets.items()} if len(nets) > 1 else len(first),
            "final_train_loss": first[-1, "train_loss"],
            "train_seconds": round(seconds, 3),
        },
        "params": dict(configs.settings(estimator), precision_used=precisions_used(estimator)),
        "data": record,
        "versions": provenance.library_versions(),
    }
    save_model(estimator, model_path, metadata)
    figures = write_figures(estimator, folder, model_path, title=name)
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
