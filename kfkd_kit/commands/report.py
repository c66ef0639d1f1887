"""Error analysis of a saved model on held-out rows: `make report MODEL=... DATA=...`.

Which rows: for a single-net Pipeline with a validation split (or a SeedEnsemble, whose
nets share one), the rows the net never trained on, as ``KeypointNet.validation_rows`` draws
them (its epoch table's rows), plus, for a net that trains on complete rows only (net1), the
incomplete rows whose image no trained row shares. For any other model (FoldEnsemble, Specialists, FlipTTA), a net
without a validation split, or with ``holdout=True``, a ``splits.grouped_holdout`` of the
data (20%, seeded), with a NOTE line saying those rows may have been trained on.

What: a per-keypoint RMSE table (x, y, both; labelled values) and bar chart; RMSE of the
faces with all 15 keypoints labelled against the others; the 16 faces with the highest
RMSE over their labelled values, true and predicted keypoints drawn on them; the learning
curves. Written to ``reports/<model stem>-<UTC stamp>/``: ``report.html`` (one
self-contained page, images embedded as data URIs), the PNGs, ``keypoints.csv`` and
``worst-faces.csv``; every file atomically.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from .. import data
from ..data import splits
from . import _plots as plots
from ..utils.atomic import atomic_write, create_unique, utc_stamp, write_csv
from ..meta.ensemble import SeedEnsemble
from ..net.estimator import flip_axis_of
from ..net.nested import histories, nets
from ..keypoints import KEYPOINTS, N_TARGETS
from ..net.metrics import masked_rmse_px
from ..utils.modelfile import load_model, read_record
from ..meta.tta import flip_tta
from . import _options

HOLDOUT_FRACTION = 0.2


# --------------------------------------------------------------------------- which rows


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


# --------------------------------------------------------------------------- numbers


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


# --------------------------------------------------------------------------- the report


def _histories(model) -> dict:
    """{name: skorch history} of the nets inside any kfkd model ({} if none is found)."""
    try:
        return histories(model)
    except (AttributeError, KeyError, TypeError):
        return {}


def _fmt(value, digits=3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _html_table(rows: list[dict], headers: dict) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers.values())
    body = []
    for row in rows:
        cells = []
        for key in headers:
            value = row[key]
            text = _fmt(value) if isinstance(value, float) else str(value)
            cls = ' class="num"' if isinstance(value, (int, float)) else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        strong = ' class="total"' if row.get("keypoint") == "all" else ""
        body.append(f"<tr{strong}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(path, alt) -> str:
    encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(alt)}">'


_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 3px 10px; }
th { background: #eee; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: bold; background: #f6f6f6; }
img { max-width: 100%; } .note { color: #a40; } .meta { color: #555; font-size: 0.9em; }
.side { display: flex; gap: 2em; align-items: flex-start; flex-wrap: wrap; }
.side > img { flex: 1 1 480px; min-width: 0; }
"""


def make_report(model, model_path, training, out_dir="reports", holdout=False,
                seed=0, say=print) -> Path:
    """Score ``model`` on held-out rows of ``training``; write the report; return the HTML path."""
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

    folder = create_unique(Path(out_dir) / f"{model_path.stem}-{utc_stamp()}")
    title = model_path.stem
    figures = {
        "keypoints": plots.keypoint_rmse_bars(
            KEYPOINTS, [r["rmse_x_px"] for r in table[:-1]], [r["rmse_y_px"] for r in table[:-1]],
            [r["rmse_px"] for r in table[:-1]], folder / "keypoint-rmse.png",
            f"{title}: RMSE per keypoint on {len(rows)} held-out faces"),
        "worst": plots.worst_faces_grid(
            X[rows[worst]], y_true[worst], y_pred[worst], folder / "worst-faces.png",
            [f"row {r['row']}: {r['rmse_px']:.2f} px" for r in worst_rows],
            f"{title}: the {len(worst)} worst-predicted held-out faces"),
    }
    nets = _histories(model)
    if nets:
        figures["curves"] = plots.learning_curves(nets if len(nets) > 1 else next(iter(nets.values())),
                                                  folder / "learning-curves.png", title)
    write_csv(folder / "keypoints.csv", pd.DataFrame(table))
    write_csv(folder / "bias.csv", pd.DataFrame(bias))
    if worst_rows:
        write_csv(folder / "worst-faces.csv", pd.DataFrame(worst_rows))

    overall = table[-1]["rmse_px"]
    page = [f"<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}: error analysis</title><style>{_STYLE}</style></head><body>",
            f"<h1>{html.escape(title)}: error analysis</h1>",
            f"<p><b>RMSE {_fmt(overall)} px</b> over {table[-1]['labelled_values']} labelled "
            f"values of {len(rows)} held-out faces: {html.escape(how)}.</p>",
            *(f'<p class="note">{html.escape(n)}</p>' for n in notes),
            # file names only: a page (or a picture of it) shows no machine's folders
            f'<p class="meta">model {html.escape(Path(model_path).name)}; data '
            f"{html.escape(Path(str(training.source)).name)} ({len(X)} rows, fingerprint "
            f"{html.escape(training.fingerprint[:12])}); written {utc_stamp()}.</p>",
            "<h2>RMSE per keypoint</h2><div class=\"side\">",
            _html_table(table, {"keypoint": "keypoint", "rmse_x_px": "x (px)",
                                "rmse_y_px": "y (px)", "rmse_px": "x and y (px)",
                                "labelled_values": "labelled values"}),
            _img(figures["keypoints"], "RMSE per keypoint"), "</div>",
            "<h2>Residual bias</h2>",
            f"<p>Mean signed error (predicted &minus; true) over the labelled values. The "
            f"model mirrors keypoints about x = {axis:.3f} px for flip augmentation and flip "
            "TTA (measured from its training rows unless set with FLIP_AXIS=); an axis that "
            "does not fit the labels shows as a bias in x.</p>",
            _html_table(bias, {"prediction": "prediction", "bias_x_px": "x (px)",
                               "bias_y_px": "y (px)"}),
            "<h2>Complete faces against the others</h2>",
            _html_table(completeness, {"faces": "faces", "count": "count",
                                       "labelled_values": "labelled values",
                                       "rmse_px": "RMSE (px)"}),
            f"<h2>The {len(worst)} worst-predicted faces</h2>",
            "<p>By RMSE over each face's labelled values. <span style=\"color:#1a9e1a\">"
            "&#9679; true</span>, <span style=\"color:#d62728\">&#215; predicted</span>; "
            "a line joins each pair; a cross with no dot is a keypoint the face does not label. "
            "\"row\" is the row in the training file (0-based).</p>",
            _img(figures["worst"], "worst-predicted faces"),
            "<h2>Learning curves</h2>",
            (_img(figures["curves"], "learning curves") if "curves" in figures
             else "<p>No training history found in this model.</p>"),
            "</body></html>\n"]
    path = folder / "report.html"
    with atomic_write(path, "w") as f:
        f.write("\n".join(page))
    return path


def _recorded_fingerprint(model_path) -> str | None:
    data_record = (read_record(model_path) or {}).get("data")
    return data_record.get("fingerprint") if isinstance(data_record, dict) else None


def run_report(model_path, data_dir="data", out_dir="reports", holdout=False, seed=0,
               trust=False, say=print) -> Path:
    """Load the model (sha256-checked) and the training data; write the report."""
    model = load_model(model_path, trust=trust)        # fails before anything is written
    folder = data.resolve_data_dir(data_dir, say)
    training = data.load_training(folder)
    return make_report(model, model_path, training, out_dir=out_dir,
                       holdout=holdout, seed=seed, say=say)


def add_parser(sub):
    p = _options.command_parser(sub, "report")
    _options.add_common(p, net=False)
    _options.add_model(p)
    _options.add_holdout(p, None,
                         "score a grouped hold-out of this share of the rows (seeded by --seed; "
                         f"a bare --holdout: {HOLDOUT_FRACTION}) (default: none, the model's "
                         "own validation split)", bare=HOLDOUT_FRACTION)
    _options.add_seed(p, "the seed of the hold-out")
    _options.add_out(p, "reports", "the folder where the report folder "
                                   "<model stem>-<UTC time>/ goes",
                     old=["--out-dir"])
    _options.add_trust(p)
    p.set_defaults(func=run)


def run(args):
    print(run_report(args.model, data_dir=args.data, out_dir=args.out, holdout=args.holdout,
                     seed=args.seed, trust=args.trust_model))
