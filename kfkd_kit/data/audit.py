"""A data audit without a trained net: duplicate images, labels that look wrong, images with
no face, and the rows' labelling groups; and the cleaned copy of a training file.

    audit(X, y, X_test=None, oof=None) -> Audit  every check below, on arrays; with ``oof``
                                                 (out-of-fold predictions, (n, 30) px) the
                                                 residual checks of residual_checks.py too
    exact_duplicates(X, X_test)    -> [Group]    identical pixels (splits.image_groups)
    near_duplicates(X, X_test)     -> [Group]    the same picture again, re-lit, noisier or
                                                 moved a pixel or two
    blank_images(X)                -> rows       near-constant images: no face to find
    mean_shape(y)                  -> (15, 2)    the robust mean layout after similarity alignment
    swapped_pairs(y, shape)        -> [dict]     left/right pairs that fit clearly better swapped
    geometry_outliers(y, shape)    -> [dict]     keypoints far from where the rest of the face
                                                 puts them (robust z-score, leave-one-out)
    labelling_groups(y)            -> groups, bias   which keypoints each row labels; whether
                                                 the groups differ on the keypoints they share
    clean_changes(audit, y)        -> [Change]   the conservative cleaning policy (below)
    write_clean(source, path, changes)           the training file with those changes, atomically

Alignment: each row's labelled points are fitted to the mean shape by a similarity (rotation,
uniform scale, shift; no reflection), least squares, all rows at once in complex numbers
(as photo/framing.fit_similarity does one at a time; the data layer sits below photo).
Residuals are measured in the mean shape's frame, so a face's size does not matter.

Cleaning policy (``clean_changes``), conservative: only what a check flags clearly.

* rows whose image is near-constant (no face) are dropped;
* exact duplicate images within the training file: the first row is kept, and each later
  copy whose labels agree with it (every keypoint labelled in both within ``AGREE_PX``) is
  merged into it (the keypoints only the copy labels are copied over, as written) and
  dropped; copies that disagree are kept, both, for the user to judge from the page;
* a left/right pair that fits clearly better swapped is swapped (its fields exchanged, as
  written);
* a keypoint flagged as a geometry outlier is set to missing (both its fields emptied);
* near duplicates are reported, never changed (they may be distinct crops of one photo);
* with out-of-fold predictions (residual_checks.py's policy, stricter than its report): a
  keypoint far from its prediction is set to missing where the geometry check flags it too
  (one change, both reasons) or where it is far beyond the report's threshold; a pair that
  fits the prediction better swapped is swapped where the geometry check swaps it too or
  where the fit is very clearly better. No keypoint is changed twice: a swapped pair is not
  also emptied.

The file is rewritten field by field from its own text: unchanged fields keep their exact
text, so a cleaned file reads back to the same numbers except where the log says.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..keypoints import DEFAULT_PIXEL_ORIGIN, FEATURE_NAMES, KEYPOINTS, N_TARGETS
from ..utils.atomic import atomic_write
from .duplicates import AGREE_PX, Group, blank_images, exact_duplicates, near_duplicates
from .residual_checks import cleaned_by_residual, oof_checks, swapped_by_residual
from .label_checks import (apply_swaps, geometry_outliers, labelling_groups, mean_shape,
                           outside_points, swapped_pairs)

__all__ = ["Audit", "Change", "audit", "exact_duplicates", "near_duplicates", "blank_images",
           "mean_shape", "swapped_pairs", "geometry_outliers", "labelling_groups",
           "clean_changes", "write_clean"]


@dataclass
class Change:
    """One change of the cleaned file: ``row`` of the input (0-based), ``column`` (a
    keypoint column, or "" for a dropped row), the ``old`` and ``new`` text, the ``reason``."""
    row: int
    column: str
    old: str
    new: str
    reason: str


@dataclass
class Audit:
    n_rows: int
    n_test: int
    exact: list = field(default_factory=list)        # [Group]
    near: list = field(default_factory=list)         # [Group]
    blank: list = field(default_factory=list)        # [dict] rows of the training file
    blank_test: list = field(default_factory=list)   # [dict] rows of the test file
    faceless: list | None = None                     # [dict] rows no detector face (FIND_FACES)
    faceless_test: list | None = None
    swapped: list = field(default_factory=list)      # [dict]
    outliers: list = field(default_factory=list)     # [dict]
    outside: list = field(default_factory=list)      # [dict]
    groups: list = field(default_factory=list)       # [dict]
    bias: list = field(default_factory=list)         # [dict]
    shape: np.ndarray | None = None
    oof: object | None = None                        # residual_checks.OOFChecks, with OOF=

    def counts(self) -> dict:
        return {"rows": self.n_rows, "test images": self.n_test,
                "exact duplicate groups": len(self.exact),
                "near duplicate groups": len(self.near),
                "duplicate groups whose labels disagree": sum(g.disagree for g in
                                                              self.exact + self.near),
                "blank training images": len(self.blank), "blank test images": len(self.blank_test),
                **({} if self.faceless is None else {
                    "training images where no face is found": len(self.faceless),
                    "test images where no face is found": len(self.faceless_test or [])}),
                "swapped left/right pairs": len(self.swapped),
                "geometry outliers": len(self.outliers), "points outside the image": len(self.outside),
                "labelling groups": len(self.groups),
                "shared keypoints that differ between groups": sum(b["differs"] for b in self.bias),
                **({} if self.oof is None else {
                    "pairs that fit the out-of-fold prediction better swapped": len(self.oof.swapped),
                    "keypoints far from their out-of-fold prediction": len(self.oof.outliers)})}

    def tables(self) -> dict:
        """{CSV name: (rows as dicts, columns)}: what each check found, one table each."""
        def groups(items, start=0):
            return [{"group": start + k, "kind": g.kind, "rows": " ".join(map(str, g.rows)),
                     "test": " ".join(map(str, g.test)), "similarity": g.similarity,
                     "disagree": g.disagree, "max_diff_px": g.max_diff_px}
                    for k, g in enumerate(items)]
        labels = ([{"row": s["row"], "keypoint": " ".join(s["keypoints"]), "check": "swapped",
                    "score": s["sse"] / max(s["sse_swapped"], 1e-9)} for s in self.swapped]
                  + [{"row": o["row"], "keypoint": o["keypoint"], "check": "outlier",
                      "score": o["z"]} for o in self.outliers]
                  + [{"row": o["row"], "keypoint": o["keypoint"], "check": "outside",
                      "score": np.nan} for o in self.outside])
        tables = {
            "duplicates": (groups(self.exact) + groups(self.near),
                           ["group", "kind", "rows", "test", "similarity", "disagree",
                            "max_diff_px"]),
            "labels": (labels, ["row", "keypoint", "check", "score"]),
            "no-face": ([{"file": "training", "check": "blank", **b} for b in self.blank]
                        + [{"file": "test", "check": "blank", **b} for b in self.blank_test]
                        + [{"file": "training", "check": "detector", **b}
                           for b in self.faceless or []]
                        + [{"file": "test", "check": "detector", **b}
                           for b in self.faceless_test or []],
                        ["file", "row", "check", "std", "spread", "score"]),
            "groups": ([{"group": g["group"], "rows": g["count"],
                         "keypoints": " ".join(g["keypoints"])} for g in self.groups],
                       ["group", "rows", "keypoints"]),
            "group-bias": (self.bias, None),
        }
        if self.oof is not None:
            tables["oof-labels"] = (
                [{"row": s["row"], "keypoint": " ".join(s["keypoints"]), "check": "swapped",
                  "distance_px": np.nan, "z": np.nan, "ratio": s["ratio"]}
                 for s in self.oof.swapped]
                + [{"check": "residual", **o, "ratio": np.nan} for o in self.oof.outliers],
                ["row", "keypoint", "check", "label_x", "label_y", "predicted_x", "predicted_y",
                 "residual_px", "distance_px", "z", "ratio"])
            tables["oof-keypoints"] = (self.oof.keypoints, None)
        return tables


# --------------------------------------------------------------------------- everything

def audit(X, y, X_test=None, oof=None, oof_run="", pixel_origin=None) -> Audit:
    """Every check on training images ``X`` (n, 9216) uint8 with labels ``y`` (n, 30) px
    (NaN missing; labels of pixel origin ``pixel_origin``, None the default: keypoints.py)
    and, if given, the test images ``X_test`` and the out-of-fold predictions ``oof``
    (n, 30) px of the cv run ``oof_run``. Deterministic."""
    X = np.asarray(X)
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (len(X), N_TARGETS):
        raise ValueError(f"expected labels of shape ({len(X)}, {N_TARGETS}), got {y.shape}")
    X_test = np.zeros((0, X.shape[1]), dtype=X.dtype) if X_test is None else np.asarray(X_test)
    result = Audit(n_rows=len(X), n_test=len(X_test))
    result.blank = blank_images(X)
    result.blank_test = blank_images(X_test)
    blank_rows = {b["row"] for b in result.blank}
    result.exact = exact_duplicates(X, X_test, y)
    result.near = near_duplicates(X, X_test, y, exclude=[*blank_rows, *(len(X) + b["row"]
                                                                        for b in result.blank_test)])
    result.outside = outside_points(y, DEFAULT_PIXEL_ORIGIN if pixel_origin is None else pixel_origin)
    faces = np.array([r for r in range(len(X)) if r not in blank_rows], dtype=np.int64)
    if len(faces) and (np.isfinite(y[faces]).sum(axis=0) > 0).all():
        shape = mean_shape(y[faces])
        result.shape = shape
        result.swapped = swapped_pairs(y, shape, faces)
        fixed = apply_swaps(y, result.swapped)
        result.outliers = geometry_outliers(fixed, shape, faces)
    cleaned = y
    if result.shape is not None:          # the groups compared on the labels as cleaned
        cleaned = fixed.copy()
        for o in result.outliers:
            k = 2 * KEYPOINTS.index(o["keypoint"])
            cleaned[o["row"], k:k + 2] = np.nan
    rows = faces if len(faces) else np.arange(len(y))
    result.groups, result.bias = labelling_groups(
        cleaned[rows], result.shape, np.isfinite(y[rows, 0::2]) & np.isfinite(y[rows, 1::2]))
    for g in result.groups:        # rows of the file, not of the faces kept
        g["rows"] = [int(rows[r]) for r in g["rows"]]
    if oof is not None:
        result.oof = oof_checks(y, oof, run=oof_run)
    return result


# --------------------------------------------------------------------------- cleaning

def _text(value) -> str:
    return "" if not np.isfinite(value) else repr(float(value))


def clean_changes(result: Audit, y) -> list:
    """The changes of the cleaning policy (module docstring), in row order: [Change].
    ``old``/``new`` are values as numbers here; ``write_clean`` puts the file's text in."""
    y = np.asarray(y, dtype=np.float64)
    changes = []
    dropped = set()
    for b in result.blank:
        changes.append(Change(b["row"], "", "row", "", f"no face: near-constant image "
                                                         f"(pixel sd {b['std']:.1f})"))
        dropped.add(b["row"])
    for g in result.exact:
        rows = [r for r in g.rows if r not in dropped]
        if len(rows) < 2:
            continue
        keep = rows[0]
        for r in rows[1:]:
            both = np.isfinite(y[keep]) & np.isfinite(y[r])
            if both.any() and np.abs(y[keep, both] - y[r, both]).max() > AGREE_PX:
                continue           # disagreeing copies stay, both
            for c in np.flatnonzero(np.isfinite(y[r]) & ~np.isfinite(y[keep])):
                changes.append(Change(keep, FEATURE_NAMES[c], "", f"@{r}",
                                      f"merged from row {r}, an exact duplicate image"))
            changes.append(Change(r, "", "row", "", f"exact duplicate of row {keep}, labels agree"))
            dropped.add(r)
    for s in result.swapped:
        if s["row"] in dropped:
            continue
        names = s["keypoints"]
        for left, right in zip(names[0::2], names[1::2]):
            for axis in ("x", "y"):
                a, b = f"{left}_{axis}", f"{right}_{axis}"
                reason = f"left/right swapped: {left} and {right} fit the face exchanged"
                changes.append(Change(s["row"], a, "", f"@{b}", reason))
                changes.append(Change(s["row"], b, "", f"@{a}", reason))
    swapped = {(s["row"], k) for s in result.swapped for k in s["keypoints"]}
    oof_swapped = set()
    residual = {} if result.oof is None else {(o["row"], o["keypoint"]): o
                                              for o in result.oof.outliers}
    for s in [] if result.oof is None else result.oof.swapped:
        if s["row"] in dropped or not swapped_by_residual(s):
            continue
        names = s["keypoints"]
        for left, right in zip(names[0::2], names[1::2]):
            if (s["row"], left) in swapped or (s["row"], right) in swapped:
                continue           # the geometry check swaps it already (or another pair)
            oof_swapped |= {(s["row"], left), (s["row"], right)}
            for axis in ("x", "y"):
                a, b = f"{left}_{axis}", f"{right}_{axis}"
                reason = (f"left/right swapped: {left} and {right} fit the out-of-fold "
                          f"prediction exchanged (squared distance x{s['ratio']:.2f})")
                changes.append(Change(s["row"], a, "", f"@{b}", reason))
                changes.append(Change(s["row"], b, "", f"@{a}", reason))
    swapped |= oof_swapped
    emptied = set()
    for o in result.outliers:
        if o["row"] in dropped or (o["row"], o["keypoint"]) in oof_swapped:
            continue           # the exchange above puts it back
        emptied.add((o["row"], o["keypoint"]))
        reason = (f"outlier: {o['distance']:.1f} px from where the face's other points put "
                  f"it (robust z {o['z']:.1f})")
        r = residual.get((o["row"], o["keypoint"]))
        if r is not None:
            reason += f"; {_residual_reason(r)}"
        for axis in ("x", "y"):
            changes.append(Change(o["row"], f"{o['keypoint']}_{axis}", "", "", reason))
    for (row, keypoint), r in residual.items():
        if row in dropped or (row, keypoint) in emptied or (row, keypoint) in swapped \
                or not cleaned_by_residual(r):
            continue
        for axis in ("x", "y"):
            changes.append(Change(row, f"{keypoint}_{axis}", "", "",
                                  f"outlier: {_residual_reason(r)}"))
    return sorted(changes, key=lambda c: (c.row, c.column))


def _residual_reason(r) -> str:
    return (f"{r['residual_px']:.1f} px from its out-of-fold prediction "
            f"({r['predicted_x']:.1f}, {r['predicted_y']:.1f}), z {r['z']:.1f}")


def _rows(text: bytes) -> tuple[bytes, list]:
    """(header line, data lines) of a CSV, blank lines skipped as the loader skips them;
    lines without their newline."""
    lines = text.split(b"\n")
    header = lines[0].rstrip(b"\r")
    body = [line.rstrip(b"\r") for line in lines[1:]]
    return header, [line for line in body if line.strip()]


def write_clean(source, path, changes) -> list:
    """Write the training file at ``source`` (plain, .gz or .zip), with ``changes`` made, to
    ``path`` as a plain CSV, atomically; returns the changes with the file's own text as
    ``old`` and ``new``. Unchanged fields keep their text. ``new`` "@COLUMN" takes that
    column's text as it was (a swap) and "@ROW" a row's text of the same column (a merge)."""
    from ._files import unpack
    source = Path(source)
    name, text = unpack(source, source.read_bytes())
    header, rows = _rows(text)
    columns = [c.strip().strip('"').strip() for c in header.decode("utf-8", "replace").split(",")]
    index = {c: i for i, c in enumerate(columns)}
    fields = {}

    def row_fields(r):
        if r not in fields:
            fields[r] = rows[r].split(b",")
        return fields[r]

    original = {}

    def old_text(r, column):
        key = (r, column)
        if key not in original:
            original[key] = row_fields(r)[index[column]].decode("utf-8", "replace")
        return original[key]

    done, drop, edits = [], set(), {}
    for c in changes:
        if c.row >= len(rows):
            raise ValueError(f"{name}: row {c.row + 1}: beyond the file's {len(rows)} rows")
        if not c.column:
            drop.add(c.row)
            done.append(Change(c.row, "", "row", "", c.reason))
            continue
        old = old_text(c.row, c.column)
        if c.new.startswith("@") and c.new[1:].isdigit():
            new = old_text(int(c.new[1:]), c.column)
        elif c.new.startswith("@"):
            new = old_text(c.row, c.new[1:])
        else:
            new = c.new
        edits[(c.row, c.column)] = new
        done.append(Change(c.row, c.column, old, new, c.reason))
    for (r, column), new in edits.items():
        row_fields(r)[index[column]] = new.encode()
    with atomic_write(path, "wb") as f:
        f.write(header + b"\n")
        for r, line in enumerate(rows):
            if r in drop:
                continue
            f.write((b",".join(fields[r]) if r in fields else line) + b"\n")
    return done
