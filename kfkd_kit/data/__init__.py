"""Kaggle's files -> numpy arrays: uint8 images, pixel keypoints with NaN.

Public API::

    find_file(folder, stem)        -> Path | None   stem.csv, .csv.gz, .zip or .csv.zip
    has_kaggle_data(folder)        -> bool          a training file is there
    data_folder(folder)            -> Path          folder, if it is an existing folder (submit)
    resolve_data_dir(folder)       -> Path          folder, or the built-in synthetic set inside it
                                                    when it holds no Kaggle file at all (train)
    load_training(folder_or_file)  -> TrainingData  X, y, source, fingerprint
    load_test(folder_or_file)      -> TestData      image_ids, X, source, fingerprint
    load_lookup(folder_or_file)    -> DataFrame     RowId, ImageId, FeatureName
    DataError                      a ValueError whose message is one line naming the file, the
                                   row (or line) and the column at fault
    SUFFIXES                       the forms a file may take, in the order find_file tries them
    SYNTHETIC_FOLDER               "synthetic": where resolve_data_dir puts the built-in faces
    synthetic_folder(folder, o)    -> Path          that folder for labels of pixel origin o

``X`` is uint8 (n, 9216), ``y`` float32 (n, 30) in pixels, in Kaggle's column order
(keypoints.FEATURE_NAMES), NaN where a keypoint is missing. In messages, "row N" is the N-th
data row of the file (blank lines are skipped) and "line N" the line number in the file.
``fingerprint`` is the first 16 hex digits of the sha256 of the file's bytes (as stored: the
zip or gz file itself), which the JSON beside a model records.

Every load parses the file afresh (there is no cache): Kaggle's 7049-row training.csv parses
in about 0.8 s on two cores, with no Python work per value.

The modules behind this one, each a concern:

    _files.py    finding the files, the synthetic stand-in, unpacking .gz/.zip, the fingerprint
    _parse.py    the training and test CSVs: rows, the keypoint and ImageId columns, loaders
    _pixels.py   the Image fields -> uint8, vectorised, on two threads
    _lookup.py   IdLookupTable.csv
    _errors.py   DataError
"""
from ._errors import DataError
from ._files import (SUFFIXES, SYNTHETIC_FOLDER, data_folder, find_file, has_kaggle_data,
                     resolve_data_dir, synthetic_folder)
from ._lookup import load_lookup
from ._parse import TestData, TrainingData, load_test, load_training

from .._lazy import exports

# the loaders above are imported at once (every command reads data); these on first use
EXPORTS = {
    "synthetic": ("make_faces",),
    "synthetic_dataset": ("write_kaggle_dataset",),
    "splits": ("GroupedValidSplit", "grouped_kfold", "grouped_holdout", "grouped_shuffle_split",
               "image_groups"),
    "submission": ("SubmissionError", "build_submission", "validate_submission", "requested_keypoints",
                   "write_submission", "submission_path"),
    "mirror": ("estimate_flip_axis", "flip_consistent_axis"),
    "audit": ("Audit", "clean_changes", "write_clean"),
    "residual_checks": ("OOFChecks", "oof_checks"),
}
_lazy_names, __getattr__, __dir__ = exports(__name__, EXPORTS)
__all__ = ["DataError", "TrainingData", "TestData", "find_file", "has_kaggle_data",
           "data_folder", "resolve_data_dir", "load_training", "load_test", "load_lookup",
           "SUFFIXES", "SYNTHETIC_FOLDER", "synthetic_folder", *_lazy_names]
