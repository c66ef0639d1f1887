"""What several commands share: the training data with the record of it that a JSON
carries; the mean layout every saved model carries; Kaggle's servers behind download and
submit --kaggle."""
from __future__ import annotations

import sys

from .. import data
from ..training import data_record


def load_data(estimator, data_dir="data", say=print):
    """The training data in ``data_dir`` (Kaggle's files, else the synthetic set) and the
    record of it for the JSON. Returns (training, record). The synthetic set's labels are in
    the estimator's pixel origin."""
    training = data.load_training(data.resolve_data_dir(data_dir, say, origin_of(estimator)))
    return training, data_record(training, estimator)


def origin_of(estimator) -> float:
    """The pixel origin an unfitted (or fitted) estimator trains under (keypoints.py)."""
    from ..net.estimator import pixel_origin_of
    return pixel_origin_of(estimator, fitted=False)


def with_layout(model, y):
    """``model`` with the mean keypoint layout of labels ``y`` attached, as `kfkd train`
    attaches it, so predict can frame faces in photos with any saved model (cv's kept fold
    models, grid's refit, a stack)."""
    from ..net.estimator import pixel_origin_of
    from ..photo import framing
    framing.attach_layout(model, y, pixel_origin_of(model))
    return model


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
