"""What several commands share: the training data with the record of it that a JSON
carries."""
from __future__ import annotations

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
