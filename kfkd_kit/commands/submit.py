"""`kfkd submit`: a saved model's predictions on the test images as Kaggle's
``RowId,Location`` CSV (submission.py checks it), written as a new file under
``submissions/``; with ``--kaggle`` it is then uploaded."""
from __future__ import annotations

from pathlib import Path

from . import _options
from ._shared import kaggle_call


def add_parser(sub):
    p = _options.command_parser(sub, "submit")
    _options.add_data(p, help="the folder of Kaggle's test and lookup files")
    _options.add_model(p)
    p.add_argument("--lookup", default=None, metavar="FILE",
                   help="IdLookupTable.csv (default: the data folder's)")
    _options.add_out(p, "submissions",
                     "a folder, where a new CSV named after the model goes, never replacing "
                     "an earlier one; or the exact .csv file",
                     old=["--out-dir", "--output"])
    _options.add_tta(p, "flip test-time augmentation: average with the mirrored image's "
                        "prediction")
    _options.add_trust(p)
    p.add_argument("--kaggle", action="store_true",
                   help="then upload the CSV to the competition (the kaggle package, credentials "
                        "in ~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY)")
    p.add_argument("--message", default=None,
                   help="the submission's description on Kaggle (default: the CSV's name)")
    p.set_defaults(func=run)


def predict_in_chunks(model, X, chunk=512, groups=None):
    """``model.predict(X)`` a chunk of rows at a time, with a progress bar (on a terminal,
    progress.bar). Every estimator here predicts each row on its own, and a chunk is a
    whole number of the nets' batches (128), so the result is the same. ``groups``: each
    row's labelling group, for a model with ``predict_groups`` (labellers.LabellerBias)."""
    import numpy as np
    from ..utils import progress

    def predict(rows):
        if groups is None:
            return model.predict(X[rows])
        return model.predict_groups(X[rows], list(np.asarray(groups)[rows]))
    parts = []
    with progress.bar(total=len(X), desc="predicting", unit="image") as bar:
        for start in range(0, len(X), chunk):
            parts.append(np.asarray(predict(slice(start, start + chunk))))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else predict(slice(0, 0))


def run(args):
    from .. import data
    from ..utils.modelfile import load_model
    from ..data.submission import build_submission, submission_path, write_submission

    model_path = Path(args.model)
    model = load_model(model_path, trust=args.trust_model)
    tta = args.tta or args.tta_shift > 0
    if tta:
        from ..meta.tta import flip_tta
        model = flip_tta(model, shift=args.tta_shift)
    folder = data.data_folder(args.data)     # the user's own files, never a synthetic stand-in
    from ..net.estimator import pixel_origin_of
    # the set in the model's convention, else one written before the convention was a setting
    synthetic = next((f for f in (data.synthetic_folder(folder, pixel_origin_of(model)),
                                  folder / data.SYNTHETIC_FOLDER)
                      if data.find_file(f, "test") is not None), None)
    if data.find_file(folder, "test") is None and synthetic is not None:
        raise FileNotFoundError(
            f"{folder}: no test file; the built-in synthetic faces that train used when it found "
            f"none are in {synthetic}: submit for their test set with DATA={synthetic}")
    test = data.load_test(folder)
    lookup = data.load_lookup(args.lookup or folder)
    print(f"predicting {len(test.X)} test images from {test.source} with {model_path}")
    from ..meta.labellers import lookup_groups
    groups = lookup_groups(model, test.image_ids, lookup)
    table = build_submission(predict_in_chunks(model, test.X, groups=groups), test.image_ids,
                             lookup)
    name = (model_path.stem + ("-tta" if tta else "")
            + (f"-shift{args.tta_shift}" if args.tta_shift else ""))
    if Path(args.out).suffix.lower() == ".csv":
        path = write_submission(table, lookup, args.out)
    else:                                  # a new file: never replaces an earlier submission
        path = write_submission(table, lookup, submission_path(args.out, name), exclusive=True)
    print(path)
    if args.kaggle:                        # the CSV is written and checked: now upload it
        return kaggle_call("submit", lambda api: api.upload(path, args.message or path.name))
