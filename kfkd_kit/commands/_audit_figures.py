"""The figures of `kfkd audit`'s page: the duplicate groups side by side, and the faces
each check flags, their flagged keypoints marked (and, with --oof, the predictions)."""
from __future__ import annotations

import functools

from ..keypoints import KEYPOINTS
from . import _plots as plots

DRAWN = 12           # groups or faces drawn per section


def _group_cells(groups, training, test, columns=4):
    cells = []
    for g in groups[:DRAWN]:
        row = [(training.X[r], training.y[r], f"row {r}" + (" disagree" if g.disagree else ""), [])
               for r in g.rows]
        row += [(test.X[t], None, f"test {t}", []) for t in g.test]
        row = row[:columns]
        cells += row + [None] * (columns - len(row))
    return cells


def _face_cells(items, training, marked):
    cells = []
    for item in items[:DRAWN]:
        r = item["row"]
        cells.append((training.X[r], training.y[r], f"row {r}", marked(item)))
    return cells


def audit_figures(result, training, test, folder, oof=None, origin=None):
    """({section: PNG path}, {section: faces drawn}) of an audit's flagged rows; keypoints in
    labels of pixel origin ``origin`` (None: the default, keypoints.py)."""
    figures, shown = {}, {}
    table = functools.partial(plots.face_table, **({} if origin is None else {"origin": origin}))
    if result.exact:
        figures["exact"] = table(_group_cells(result.exact, training, test),
                                            folder / "exact-duplicates.png")
        shown["exact"] = min(DRAWN, len(result.exact))
    if result.near:
        figures["near"] = table(_group_cells(result.near, training, test),
                                           folder / "near-duplicates.png")
        shown["near"] = min(DRAWN, len(result.near))
    if result.swapped:
        figures["swapped"] = table(
            _face_cells(result.swapped, training, lambda s: [KEYPOINTS.index(k) for k in s["keypoints"]]),
            folder / "swapped.png")
        shown["swapped"] = min(DRAWN, len(result.swapped))
    if result.outliers:
        figures["outliers"] = table(
            _face_cells(result.outliers, training, lambda o: [KEYPOINTS.index(o["keypoint"])]),
            folder / "outliers.png")
        shown["outliers"] = min(DRAWN, len(result.outliers))
    if result.oof is not None and (result.oof.outliers or result.oof.swapped):
        items = [(s["row"], [KEYPOINTS.index(k) for k in s["keypoints"]],
                  "swapped " + " ".join(s["keypoints"][:2]).replace("_center", ""))
                 for s in result.oof.swapped]
        items += [(o["row"], [KEYPOINTS.index(o["keypoint"])],
                   f"{o['keypoint']} {o['residual_px']:.0f} px") for o in result.oof.outliers]
        items = items[:DRAWN]         # the swaps, then the worst residuals
        figures["oof"] = table(
            [(training.X[r], training.y[r], f"row {r}: {what}", marked, oof[r])
             for r, marked, what in items], folder / "oof-residuals.png")
        shown["oof"] = len(items)
    blank = [(training.X[b["row"]], None, f"row {b['row']}", []) for b in result.blank] + \
            [(test.X[b["row"]], None, f"test {b['row']}", []) for b in result.blank_test]
    blank += [(training.X[b["row"]], None, f"row {b['row']}: score {b['score']:.2f}", [])
              for b in result.faceless or []]
    blank += [(test.X[b["row"]], None, f"test {b['row']}: score {b['score']:.2f}", [])
              for b in result.faceless_test or []]
    if blank:
        figures["blank"] = table(blank[:DRAWN], folder / "no-face.png")
        shown["blank"] = min(DRAWN, len(blank))
    return figures, shown
