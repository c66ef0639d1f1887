"""What several commands share: the training data with the record of it that a JSON
carries; Kaggle's servers behind download and submit --kaggle."""
from __future__ import annotations

import sys

import numpy as np

from .. import data
from ..net.nested import inner_net


def data_record(training, estimator) -> dict:
    """What a JSON says about the training data: file, fingerprint, rows, and the rows the
    estimator trains on (all, or the complete ones: its own ``complete_only``)."""
    net = inner_net(estimator)
    return {"source": str(training.source), "fingerprint": training.fingerprint,
            "rows": len(training.X), "complete_only": bool(net.complete_only),
            "rows_trained": int(len(net.fit_rows(training.y))),
            "labelled_values": int(np.isfinite(training.y).sum())}


def load_data(estimator, data_dir="data", say=print):
    """The training data in ``data_dir`` (Kaggle's files, else the synthetic set) and the
    record of it for the JSON. Returns (training, record)."""
    training = data.load_training(data.resolve_data_dir(data_dir, say))
    return training, data_record(training, estimator)


def kaggle_call(command, work):
    """Run ``work(data.kaggle_api)`` for `kfkd <command>`; a KaggleError is one line on
    stderr and exit 2. A string result is printed."""
    from ..data import kaggle_api
    try:
        result = work(kaggle_api)
    except kaggle_api.KaggleError as exc:
        print(f"kfkd {command}: error: {exc}", file=sys.stderr)
        return 2
    if isinstance(result, str):
        print(result)
    return 0
