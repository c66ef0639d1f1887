"""Error analysis of a fitted model on held-out rows (`kfkd report`, commands/report.py, which
writes it out as a page).

Which rows: for a single-net Pipeline with a validation split (or a SeedEnsemble, whose
nets share one), the rows the net never trained on, as ``KeypointNet.validation_rows`` draws
them (its epoch table's rows), plus, for a net that trains on complete rows only (net1), the
incomplete rows whose image no trained row shares. For any other model (FoldEnsemble,
Specialists, FlipTTA), a net without a validation split, or with ``holdout`` (a fraction;
True: 20%), a seeded ``splits.grouped_holdout`` of the data, with a NOTE line saying those rows may
have been trained on.

What: a per-keypoint RMSE table (x, y, both; labelled values), the residual bias in x and y
(plain and with flip TTA), RMSE of the faces with all 15 keypoints labelled against the
others, and the 16 faces with the highest RMSE over their labelled values. ``analyse`` does
it all and returns an ``Analysis``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import splits
from ..keypoints import KEYPOINTS, N_TARGETS
from ..meta.ensemble import SeedEnsemble
from ..meta.tta import flip_tta
from ..net.estimator import flip_axis_of
from ..net.metrics import masked_rmse_px
from ..net.nested import histories, nets
from ..utils.modelfile import read_record

__all__ = ["analyse", "Analysis", "held_out_rows", "per_face_rmse", "worst_faces",
           "keypoint_table", "bias_table", "completeness_table", "model_histories",
           "HOLDOUT_FRACTION"]

HOLDOUT_FRACTION = 0.2


def _single_net(model):
    """The fitted KeypointNet whose validation split is the model's: a single-net
    Pipeline's, or a SeedEnsemble's first member's (its members share one split); None for
    any other model."""
    if isinstance(model, SeedEnsemble):
        model = model.estimators_[0]
    found = nets(model) if hasattr(model, "named_steps") else {}
    return found.get("net")


def held_out_rows(model, X, y, holdout=False, seed=0) -> tuple[np.ndarray, str, str | None]:
    """(sorted row indices, how they were chosen, a NOTE or None)."""
    net = None if holdout else _single_net(model)
    valid = None if net is None else net.validation_rows(X, y)
    if valid is not None:
        trained = np.setdiff1d(net.fit_rows(y), valid)
        groups = splits.image_groups(X)
        rows = np.flatnonzero(~np.isin(groups, groups[trained]))
        extra = len(rows) - len(valid)
        how = f"the model's own validation split ({len(valid)} rows"
        how += (f", plus {extra} rows it never trained on: it trains on complete rows only)"
                if extra else ")")
        return rows, how, None
    fraction = HOLDOUT_FRACTION if holdout in (True, False, None) else holdout
    _, rows = splits.grouped_holdout(X, fraction, seed)
    how = f"a grouped hold-out of {fraction:.0%} of the rows (seed {seed})"
    net = _single_net(model)
    if net is not None:
        valid = net.validation_rows(X, y)
        trained = net.fit_rows(y) if valid is None else np.setdiff1d(net.fit_rows(y), valid)
        overlap = int(np.isin(rows, trained).sum())
        note = None if not overlap else (
            f"NOTE: {overlap} of these {len(rows)} rows were in the model's training part: "
            "its RMSE on them is optimistic")
    else:
        note = (f"NOTE: a {type(model).__name__} has no single validation split; these rows "
                "may have been trained on, so the RMSE may be optimistic")
    return rows, how, note


def per_face_rmse(y_true, y_pred) -> np.ndarray:
    """RMSE px of every face over its labelled values (NaN for a face with none)."""
    y_true = np.asarray(y_true, np.float64)
    sq = (y_true - np.asarray(y_pred, np.float64)) ** 2
    labelled = np.isfinite(y_true)
    count = labelled.sum(axis=1)
    total = np.where(labelled, sq, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.sqrt(total / np.maximum(count, 1)), np.nan)


def worst_faces(face_rmse, n=16) -> np.ndarray:
    """Positions of the ``n`` highest per-face RMSEs, highest first (NaN faces never)."""
    face_rmse = np.asarray(face_rmse, np.float64)
    order = np.argsort(-np.nan_to_num(face_rmse, nan=-np.inf), kind="stable")
    return order[:min(n, int(np.isfinite(face_rmse).sum()))]


def keypoint_table(y_true, y_pred) -> list[dict]:
    """Per keypoint: RMSE px in x, in y and over both, and how many values are labelled;
    then the same over all keypoints ("all")."""
    out = []
    for k, name in enumerate(KEYPOINTS):
        x, yy = 2 * k, 2 * k + 1
        out.append({"keypoint": name,
                    "rmse_x_px": masked_rmse_px(y_true[:, x], y_pred[:, x]),
                    "rmse_y_px": masked_rmse_px(y_true[:, yy], y_pred[:, yy]),
                    "rmse_px": masked_rmse_px(y_true[:, x:yy + 1], y_pred[:, x:yy + 1]),
                    "labelled_values": int(np.isfinite(y_true[:, x:yy + 1]).sum())})
    out.append({"keypoint": "all",
                "rmse_x_px": masked_rmse_px(y_true[:, 0::2], y_pred[:, 0::2]),
                "rmse_y_px": masked_rmse_px(y_true[:, 1::2], y_pred[:, 1::2]),
                "rmse_px": masked_rmse_px(y_true, y_pred),
                "labelled_values": int(np.isfinite(y_true).sum())})
    return out


def bias_table(y_true, predictions: dict) -> list[dict]:
    """Mean signed error (predicted - true, px) over the labelled x and y values, one row
    per way of predicting ({"plain": ..., "flip TTA": ...}): the residual bias, in x
    chiefly that of a mirror axis that does not fit the labels."""
    rows = []
    for how, y_pred in predictions.items():
        error = np.asarray(y_pred, np.float64) - y_true
        rows.append({"prediction": how,
                     "bias_x_px": float(np.nanmean(error[:, 0::2])),
                     "bias_y_px": float(np.nanmean(error[:, 1::2]))})
    return rows


def completeness_table(y_true, y_pred) -> list[dict]:
    """RMSE px of the faces with all 15 keypoints labelled and of the others."""
    complete = np.isfinite(y_true).all(axis=1)
    rows = []
    for label, mask in (("all 15 keypoints labelled", complete),
                        ("fewer labelled", ~complete)):
        rows.append({"faces": label, "count": int(mask.sum()),
                     "labelled_values": int(np.isfinite(y_true[mask]).sum()),
                     "rmse_px": masked_rmse_px(y_true[mask], y_pred[mask]) if mask.any()
                     else float("nan")})
    return rows


def model_histories(model) -> dict:
    """{name: skorch history} of the nets inside any kfkd model ({} if none is found)."""
    try:
        return histories(model)
    except (AttributeError, KeyError, TypeError):
        return {}


def _recorded_fingerprint(model_path) -> str | None:
    data_record = (read_record(model_path) or {}).get("data")
    return data_record.get("fingerprint") if isinstance(data_record, dict) else None


@dataclass
class Analysis:
    """What ``analyse`` found: the held-out ``rows`` and ``how`` they were chosen, the
    ``notes`` said about them, the true and predicted pixels there, the tables (``table``
    per keypoint, its last row "all"; ``bias``; ``completeness``), the model's flip
    ``axis``, each face's RMSE (``face_rmse``) and the worst faces (``worst``: positions in
    ``rows``; ``worst_rows``: their rank, row, RMSE and labelled keypoints)."""
    rows: np.ndarray
    how: str
    notes: list
    y_true: np.ndarray
    y_pred: np.ndarray
    table: list
    bias: list
    axis: float
    completeness: list
    face_rmse: np.ndarray
    worst: np.ndarray
    worst_rows: list


def analyse(model, model_path, training, holdout=False, seed=0, say=print) -> Analysis:
    """Score ``model`` (saved at ``model_path``) on held-out rows of ``training``
    (data.TrainingData); say which rows and the mean x error as it goes."""
    model_path = Path(model_path)
    X, y = training.X, training.y
    rows, how, note = held_out_rows(model, X, y, holdout=holdout, seed=seed)
    if not len(rows):
        raise ValueError(f"{training.source}: no held-out rows to score; use --holdout 0.2 "
                         "(make report HOLDOUT=0.2)")
    notes = [note] if note else []
    recorded = _recorded_fingerprint(model_path)
    if recorded and recorded != training.fingerprint:
        notes.append(f"NOTE: {model_path.name} was trained on other data (fingerprint "
                     f"{recorded[:12]}..., this is {training.fingerprint[:12]}...): its own "
                     "split of these rows is not the one it trained with")
    say(f"scoring {model_path} on {len(rows)} held-out rows of {training.source}: {how}")
    for line in notes:
        say(line)

    y_true = y[rows].astype(np.float64)
    y_pred = np.asarray(model.predict(X[rows]), np.float64).reshape(len(rows), N_TARGETS)
    table = keypoint_table(y_true, y_pred)
    axis = flip_axis_of(model)
    mirrored = np.asarray(flip_tta(model).predict(X[rows]), np.float64).reshape(y_pred.shape)
    bias = bias_table(y_true, {"plain": y_pred, "flip TTA": mirrored})
    say(f"mean x error {bias[0]['bias_x_px']:+.3f} px plain, {bias[1]['bias_x_px']:+.3f} px "
        f"with flip TTA (the model's flip axis: {axis:.3f} px)")
    completeness = completeness_table(y_true, y_pred)
    faces = per_face_rmse(y_true, y_pred)
    worst = worst_faces(faces)
    worst_rows = [{"rank": i + 1, "row": int(rows[j]), "rmse_px": float(faces[j]),
                   "labelled_keypoints": int(np.isfinite(y_true[j]).sum() // 2)}
                  for i, j in enumerate(worst)]
    return Analysis(rows, how, notes, y_true, y_pred, table, bias, axis, completeness, faces,
                    worst, worst_rows)
