"""`kfkd audit` (``make audit DATA=... [CLEAN=...] [OOF=cv/<run>]``): the data audit of a
training file (and the test file beside it) without a trained net, and, with ``--oof``, its
labels against a cv run's out-of-fold predictions (search/oof.py reads them), written to
``reports/audit-<UTC stamp>/``: ``audit.html`` (one self-contained page, faces drawn), the
PNGs, and one CSV per check; with ``--clean PATH``, a cleaned copy of the training file and
``PATH``'s log of every change (``<stem>-changes.csv``). The checks and the cleaning
policy: data/audit.py; the page: search/audit_html.py.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd

from .. import data

from ..data.audit import audit as audit_data, clean_changes, write_clean
from ..search.audit_html import audit_page
from ..search.oof import read_run
from ..utils.atomic import atomic_write, create_unique, utc_stamp, write_csv
from . import _options
from ._audit_figures import audit_figures

def log_path(clean) -> Path:
    clean = Path(clean)
    return clean.with_name(f"{clean.stem}-changes.csv")


def _check_clean(clean, sources):
    """A one-line ValueError unless ``clean`` is a new .csv path that is no input file."""
    clean = Path(clean)
    if clean.suffix.lower() != ".csv":
        raise ValueError(f"--clean {clean}: expected a .csv path for the cleaned training file")
    for source in sources:
        if source is not None and clean.resolve() == Path(source).resolve():
            raise ValueError(f"--clean {clean}: is an input file; the cleaned copy never "
                             "replaces it")
    if clean.is_dir():
        raise ValueError(f"--clean {clean}: is a folder; expected a .csv path")


def _tables(result, folder):
    for name, (rows, columns) in result.tables().items():
        write_csv(folder / f"{name}.csv", pd.DataFrame(rows, columns=columns))


def run_audit(data_dir="data", out_dir="reports", clean=None, oof=None, find_faces=False,
              say=print, pixel_origin=None) -> Path:
    """Audit the data folder; write the page, its figures and CSVs (and, with ``clean``,
    the cleaned training file and its log); with ``oof`` (a cv run: ``cv/oof-<run>.json``
    or ``cv/<run>``), check the labels against its out-of-fold predictions too; with
    ``find_faces``, run a face detector on every image; return the page's path.
    ``pixel_origin``: the labels' convention (None: the default; keypoints.py)."""
    folder = data.resolve_data_dir(data_dir, say, pixel_origin)
    training = data.load_training(folder)
    test_file = data.find_file(folder, "test")
    test = data.load_test(test_file) if test_file is not None else None
    if clean is not None:
        _check_clean(clean, [training.source, test_file])
    run = None
    if oof is not None:
        run = read_run(oof)
        run.check_data(training, "give a run of make cv on the data given with DATA=")
    predictions = None if run is None else run.predictions.astype("float64")
    result = audit_data(training.X, training.y, None if test is None else test.X,
                        oof=predictions, oof_run="" if run is None else run.name,
                        pixel_origin=pixel_origin)
    if find_faces:      # reported, never cleaned: a detector misses some real faces
        from ..photo.face_check import faceless
        result.faceless = faceless(training.X, [b["row"] for b in result.blank], desc="training")
        result.faceless_test = [] if test is None else faceless(
            test.X, [b["row"] for b in result.blank_test], desc="test")
    changes = clean_changes(result, training.y) if clean is not None else None

    out = create_unique(Path(out_dir) / f"audit-{utc_stamp()}")
    figures, shown = audit_figures(result, training, test, out, predictions, pixel_origin)
    _tables(result, out)
    cleaned = None
    if clean is not None:
        clean = Path(clean)
        clean.parent.mkdir(parents=True, exist_ok=True)
        done = write_clean(training.source, clean, changes)
        log = pd.DataFrame([asdict(c) for c in done], columns=["row", "column", "old", "new", "reason"])
        write_csv(log_path(clean), log)
        write_csv(out / "changes.csv", log)
        cleaned = (clean, len(done))
        say(f"{clean}: {len(done)} changes, logged in {log_path(clean)}")
    page = out / "audit.html"
    with atomic_write(page, "w") as f:
        f.write(audit_page(result, figures, shown, Path(str(training.source)).name,
                           None if test is None else Path(str(test.source)).name, cleaned))
    for name, count in result.counts().items():
        say(f"{name}: {count}")
    return page


def add_parser(sub):
    p = _options.command_parser(sub, "audit")
    _options.add_data(p)
    _options.add_out(p, "reports", "the folder where the audit's folder audit-<UTC time>/ goes")
    p.add_argument("--clean", default=None, metavar="PATH",
                   help="also write a cleaned copy of the training file to this .csv, and its "
                        "log of every change to <stem>-changes.csv beside it; the test file "
                        "is never touched (default: none)")
    p.add_argument("--oof", default=None, metavar="RUN",
                   help="also check each label against a make cv run's out-of-fold "
                        "predictions: cv/oof-<run>.json or cv/<run> (default: none)")
    p.add_argument("--find-faces", action="store_true",
                   help="also run a face detector (MTCNN, needs torch) on every image and "
                        "report those where it finds none; minutes (default: off)")
    _options.add_pixel_origin(p, "where the frame ends, where keypoints are drawn")
    p.set_defaults(func=run)


def run(args):
    print(run_audit(data_dir=args.data, out_dir=args.out, clean=args.clean,
                    oof=args.oof, find_faces=args.find_faces,
                    pixel_origin=args.pixel_origin))
