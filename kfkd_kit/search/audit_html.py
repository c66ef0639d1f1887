"""The page of `kfkd audit`: one self-contained HTML file (figures embedded as data URIs)
from a ``data.audit.Audit`` and its figures."""
from __future__ import annotations

import html
from pathlib import Path

from ..data.duplicates import AGREE_PX, NEAR_SIMILARITY
from ..data.label_checks import (BIAS_Z, GROUP_MIN_ROWS, OUTLIER_MIN, OUTLIER_QUANTILE,
                                 OUTLIER_RATIO)
from ..photo.face_check import MIN_SCORE as FACE_SCORE
from ..utils.atomic import utc_stamp
from .report_html import _STYLE, _html_table, _img

__all__ = ["audit_page"]


def _section(title, intro, figure=None, table=None, headers=None, shown=None, total=None):
    parts = [f"<h2>{html.escape(title)}</h2>", f"<p>{intro}</p>"]
    if total == 0:
        parts.append("<p><b>None found.</b></p>")
        return "\n".join(parts)
    if shown is not None and total is not None and shown < total:
        parts.append(f'<p class="note">The first {shown} of {total} drawn; the CSV beside '
                     "this page lists them all.</p>")
    if figure:
        parts.append(_img(figure, title))
    if table:
        parts.append(_html_table(table, headers))
    return "\n".join(parts)


def _oof_sections(result, figures, shown) -> list:
    """The labels against a cv run's out-of-fold predictions: the faces, the worst labels
    and each keypoint's spread and threshold (data/residual_checks.py). None without them."""
    oof = result.oof
    if oof is None:
        return []
    from ..data.residual_checks import (CLEAN_MIN_PX, CLEAN_SWAP_RATIO, CLEAN_Z, RESIDUAL_MIN_PX,
                                        RESIDUAL_Z, SWAP_RATIO)
    worst = [{"row": o["row"], "keypoint": o["keypoint"],
              "label": f"({o['label_x']:.1f}, {o['label_y']:.1f})",
              "predicted": f"({o['predicted_x']:.1f}, {o['predicted_y']:.1f})",
              "residual_px": o["residual_px"], "z": o["z"]} for o in oof.outliers[:30]]
    swaps = [{"row": s["row"], "keypoint": ", ".join(s["keypoints"]), "ratio": s["ratio"]}
             for s in oof.swapped[:30]]
    keypoints = oof.keypoints
    intro = (f"Each labelled keypoint against the out-of-fold prediction of cv run "
             f"<code>{html.escape(oof.run or '?')}</code> (a net that never saw its row; "
             f"RMSE {oof.rmse_px:.3f} px over the labelled values). A keypoint is flagged "
             f"where its residual (label &minus; prediction), less the keypoint's median "
             f"residual, is more than {RESIDUAL_Z:g} times the keypoint's robust spread "
             f"(1.4826&middot;MAD) and {RESIDUAL_MIN_PX:g} px; a left/right pair where the "
             f"two labels exchanged fit the prediction below {SWAP_RATIO:g} of the squared "
             f"distance. Green: the labels as written (red: the one flagged), blue: the prediction. CLEAN= empties "
             f"a flagged keypoint only where the geometry check flags it too or beyond "
             f"{CLEAN_Z:g} spreads and {CLEAN_MIN_PX:g} px, and swaps a pair below "
             f"{CLEAN_SWAP_RATIO:g}.")
    total = len(oof.outliers) + len(oof.swapped)
    parts = [_section("Labels far from the out-of-fold prediction", intro, figures.get("oof"),
                      shown=shown.get("oof"), total=total)]
    if swaps:
        parts.append(_html_table(swaps, {"row": "row", "keypoint": "pairs swapped",
                                         "ratio": "squared distance, exchanged / as written"}))
    if worst:
        parts.append(f"<p>The worst {len(worst)} of {len(oof.outliers)} (oof-labels.csv lists "
                     "them all):</p>")
        parts.append(_html_table(worst, {"row": "row", "keypoint": "keypoint", "label": "label",
                                         "predicted": "predicted", "residual_px": "residual (px)",
                                         "z": "spreads"}))
    parts.append("<p>Per keypoint (oof-keypoints.csv):</p>")
    parts.append(_html_table(keypoints, {"keypoint": "keypoint", "labelled": "labelled",
                                         "center_x_px": "median dx", "center_y_px": "median dy",
                                         "spread_px": "spread (px)",
                                         "threshold_px": "threshold (px)", "flagged": "flagged"}))
    return parts


def audit_page(result, figures, shown, training_name, test_name, cleaned=None) -> str:
    """The HTML of the audit ``result``; ``figures``: {section: PNG path}, ``shown``:
    {section: how many drawn}; ``cleaned``: (path, number of changes) or None."""
    counts = result.counts()
    rows = [{"check": k, "count": v} for k, v in counts.items()]
    groups = [{"group": g["group"], "rows": g["count"],
               "keypoints": ", ".join(g["keypoints"]) if len(g["keypoints"]) < 15 else "all 15"}
              for g in result.groups]
    bias = [{k: b[k] for k in ("group", "versus", "keypoint", "axis", "diff_px", "se_px",
                               "aligned_diff_px", "aligned_se_px")} | {"differs": "yes" if b["differs"] else ""}
            for b in result.bias]
    page = [f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>data audit: "
            f"{html.escape(training_name)}</title><style>{_STYLE}</style></head><body>",
            f"<h1>Data audit: {html.escape(training_name)}</h1>",
            f'<p class="meta">training {html.escape(training_name)} ({result.n_rows} rows); test '
            f"{html.escape(test_name or 'none')} ({result.n_test} images); written {utc_stamp()}. "
            "\"row\" is the row in the training file (0-based), \"test\" in the test file.</p>",
            _html_table(rows, {"check": "check", "count": "count"})]
    if cleaned:
        page.append(f"<p>Cleaned copy: {html.escape(Path(cleaned[0]).name)}, {cleaned[1]} "
                    "changes, each in its log.</p>")
    page += [
        _section("Exact duplicate images", "Identical pixels, across the training and test "
                 f"images; one group a row. Labels that differ by more than {AGREE_PX:g} px on a "
                 "keypoint both rows label are marked <i>disagree</i>.", figures.get("exact"),
                 shown=shown.get("exact"), total=len(result.exact)),
        _section("Near duplicates", "The same picture again though not identical (re-lit, "
                 "noisier, moved a pixel or two): blurred images correlating above "
                 f"{NEAR_SIMILARITY:g} at their best shift.", figures.get("near"),
                 shown=shown.get("near"),
                 total=len(result.near)),
        _section("Left/right pairs that fit better swapped", "The row's points fitted to the "
                 "mean shape by a similarity fit clearly better with the marked pair "
                 "exchanged (red: the pair as labelled).", figures.get("swapped"),
                 shown=shown.get("swapped"), total=len(result.swapped)),
        _section("Keypoints far from the rest of the face", "Each labelled point against where "
                 "the row's other points put it (a similarity fit to the mean shape), more than "
                 f"{OUTLIER_RATIO:g} times that keypoint's {OUTLIER_QUANTILE * 100:.0f}th "
                 f"percentile and {OUTLIER_MIN:g} px away (red).",
                 figures.get("outliers"), shown=shown.get("outliers"), total=len(result.outliers)),
        *_oof_sections(result, figures, shown),
        _section("Keypoints outside the image", "Labels outside the 96x96 frame.", None,
                 result.outside[:50], {"row": "row", "keypoint": "keypoint"},
                 total=len(result.outside)),
        _section("Images with no face", "Near-constant images (pixel sd below 6 or a 1st to "
                 "99th percentile spread below 24 grey levels): no face to find. "
                 + ("No face detector was run (FIND_FACES=1 runs one)."
                    if result.faceless is None else
                    f"Then the images where MTCNN finds no face scoring {FACE_SCORE:g} or more "
                    "(score shown); reported only, never cleaned: a detector misses a few "
                    "real faces."), figures.get("blank"), shown=shown.get("blank"),
                 total=len(result.blank) + len(result.blank_test) + len(result.faceless or [])
                 + len(result.faceless_test or [])),
        "<h2>Labelling groups</h2><p>The rows by which keypoints they label, largest first.</p>",
        _html_table(groups, {"group": "group", "rows": "rows", "keypoints": "keypoints"}),
        f"<p>Each group of {GROUP_MIN_ROWS} rows or more against the largest, on the keypoints "
        "they share: the difference of the mean (px) with its standard error, in the image and after each "
        "row's similarity alignment to the mean shape (geometry, not placement); "
        f"<i>differs</i>: the image difference exceeds {BIAS_Z:g} standard errors. Groups may "
        "differ in their images as well as in their labelling; the aligned difference is the "
        "closer to a labelling habit. Computed after the swaps and outliers above.</p>",
        _html_table(bias, {"group": "group", "versus": "versus", "keypoint": "keypoint",
                           "axis": "axis", "diff_px": "diff (px)", "se_px": "SE",
                           "aligned_diff_px": "aligned diff", "aligned_se_px": "aligned SE",
                           "differs": "differs"}) if bias else
        "<p>No two groups of 10 rows or more.</p>",
        "</body></html>\n"]
    return "\n".join(page)
