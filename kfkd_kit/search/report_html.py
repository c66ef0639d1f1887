"""The page of `kfkd report`: one self-contained HTML file (images embedded as data URIs) from
an ``analysis.Analysis`` and its figures."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from ..utils.atomic import utc_stamp

__all__ = ["report_page"]


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


def report_page(result, figures, title, model_path, training) -> str:
    """The HTML of the report on ``result`` (an ``Analysis``) for the model at
    ``model_path``; ``figures``: {"keypoints", "worst" and maybe "curves": PNG path}."""
    rows, how, notes, table = result.rows, result.how, result.notes, result.table
    bias, axis, completeness, worst = result.bias, result.axis, result.completeness, result.worst
    X = training.X
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
    return "\n".join(page)
