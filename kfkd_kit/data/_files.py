"""Finding Kaggle's files (plain, .gz or .zip), the built-in synthetic stand-in, reading a
file's bytes out of its container, and the fingerprint of those bytes.

    SUFFIXES                      the forms a file may take, in the order they are looked for
    find_file(folder, stem)       stem.csv, .csv.gz, .zip or .csv.zip (any case), or None
    has_kaggle_data(folder)       whether folder holds a training file
    data_folder(folder)           folder, checked to be an existing folder (submit)
    resolve_data_dir(folder)      folder, or for the default data/ the synthetic set in it
    locate(folder_or_file, stem)  the file to read: folder's stem file, or the file itself
    unpack(path, raw)             (name for messages, CSV bytes) of a plain, gz or zip file
    fingerprint_of(raw)           the first 16 hex digits of the sha256 of the bytes
"""
from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
import zlib
from pathlib import Path

from ._errors import DataError

SUFFIXES = (".csv", ".csv.gz", ".zip", ".csv.zip")


def find_file(folder, stem: str) -> Path | None:
    """``folder/stem`` as .csv, .csv.gz, .zip or .csv.zip (in that order), or None.

    A name differing only in case (``idlookuptable.csv``) is found too.
    """
    folder = Path(folder)
    for suffix in SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    try:
        by_lower_name = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    except OSError:
        return None
    for suffix in SUFFIXES:
        candidate = by_lower_name.get(f"{stem}{suffix}".lower())
        if candidate is not None:
            return candidate
    return None


def has_kaggle_data(folder) -> bool:
    """Whether ``folder`` holds a Kaggle training file (any of the accepted forms)."""
    return find_file(folder, "training") is not None

SYNTHETIC_FOLDER = "synthetic"
# the data folder when none is given (--data, DATA=): a fresh clone's, which may hold no
# Kaggle files yet; the only one the built-in synthetic faces stand in for
DEFAULT_FOLDER = "data"
KAGGLE_STEMS = ("training", "test", "IdLookupTable")


def data_folder(folder) -> Path:
    """``folder`` as a Path if it is an existing folder; FileNotFoundError or
    NotADirectoryError (one line, naming it) otherwise. Nothing is generated."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such folder (expected the folder holding "
                                f"Kaggle's training.csv, test.csv and IdLookupTable.csv)")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder (expected the folder holding "
                                 f"Kaggle's training.csv, test.csv and IdLookupTable.csv)")
    return folder


def synthetic_folder(folder, pixel_origin=None) -> Path:
    """Where the built-in synthetic set of labels in pixel origin ``pixel_origin`` lives in
    ``folder``: ``synthetic`` for the default origin (None), ``synthetic-origin<o>`` for another,
    so a set written in one convention is never read as another."""
    from ..keypoints import DEFAULT_PIXEL_ORIGIN, check_pixel_origin
    origin = DEFAULT_PIXEL_ORIGIN if pixel_origin is None else check_pixel_origin(pixel_origin)
    name = SYNTHETIC_FOLDER if origin == DEFAULT_PIXEL_ORIGIN else f"{SYNTHETIC_FOLDER}-origin{origin:g}"
    return Path(folder) / name


def resolve_data_dir(folder, say=print, pixel_origin=None) -> Path:
    """The folder holding the training data: ``folder`` itself when it has a training file.

    The built-in synthetic data set (``data/synthetic``, generated once, its labels in pixel
    origin ``pixel_origin``: ``synthetic_folder``) stands in only for
    the default folder, ``data`` (DEFAULT_FOLDER), and only when it holds no Kaggle file at
    all (no training, test or lookup file) or does not exist yet, as on a fresh clone;
    ``say`` then prints one line starting with "NOTE:". Any other folder, the user's own
    choice, must hold a training file: a mistyped one is an error naming it, never
    training on generated faces. A folder that holds a test or lookup file but no training
    file is an error naming the missing file (FileNotFoundError), as is a path that is not
    a folder (NotADirectoryError): the user's files are never silently replaced. Used by
    train, cv, grid and zoo; submit reads the test and lookup files of the folder it is
    given (``data_folder``), never synthetic ones.
    """
    from .synthetic_dataset import write_kaggle_dataset
    folder = Path(folder)
    if folder.exists():
        data_folder(folder)
    if has_kaggle_data(folder):
        return folder
    tried = ", ".join("training" + s for s in SUFFIXES)
    present = [p.name for p in (find_file(folder, stem) for stem in KAGGLE_STEMS[1:]) if p]
    if present:
        raise FileNotFoundError(f"{folder}: no training file (looked for {tried}); the folder "
                                f"holds {' and '.join(present)}, so the built-in synthetic "
                                f"data is not used in its place")
    fallback = synthetic_folder(folder, pixel_origin)
    if folder != Path(DEFAULT_FOLDER):
        data_folder(folder)                      # no such folder: say so
        hint = (f"; the synthetic faces in {fallback} are a data folder of their own: "
                f"--data {fallback}" if has_kaggle_data(fallback) else "")
        raise FileNotFoundError(f"{folder}: no training file (looked for {tried}){hint}")
    if not has_kaggle_data(fallback):
        say(f"NOTE: no Kaggle training file in {folder}/: generating the built-in SYNTHETIC "
            f"faces into {fallback}/ and training on them, not on real data")
        write_kaggle_dataset(fallback, seed=0, **({} if pixel_origin is None else
                                                   {"pixel_origin": float(pixel_origin)}))
    else:
        say(f"NOTE: no Kaggle training file in {folder}/: using the built-in SYNTHETIC faces "
            f"in {fallback}/, not real data")
    return fallback


def locate(folder_or_file, stem: str) -> Path:
    path = Path(folder_or_file)
    if path.is_dir():
        found = find_file(path, stem)
        if found is None:
            tried = ", ".join(stem + s for s in SUFFIXES)
            raise FileNotFoundError(f"{path}: no {stem} file (looked for {tried})")
        path = found
    elif not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return path.resolve()


def unpack(path: Path, raw: bytes) -> tuple[str, bytes]:
    """(name used in messages, CSV bytes) of a plain, gzipped or zipped file."""
    lower = path.name.lower()
    if lower.endswith(".gz"):
        try:
            return path.name, gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path.name}: not a readable gzip file ({e})") from None
    if lower.endswith(".zip"):
        try:
            archive = zipfile.ZipFile(io.BytesIO(raw))
            members = [m for m in archive.infolist()
                       if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
            stem = lower[:-4].removesuffix(".csv")
            exact = [m for m in members if m.filename.rsplit("/", 1)[-1].lower() == f"{stem}.csv"]
            csvs = [m for m in members if m.filename.lower().endswith(".csv")]
            chosen = exact or csvs
            if len(chosen) != 1:
                names = ", ".join(m.filename for m in members) or "nothing"
                raise DataError(f"{path.name}: expected one CSV file inside, found {names}")
            return f"{chosen[0].filename} in {path.name}", archive.read(chosen[0])
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
            raise DataError(f"{path.name}: not a readable zip file ({e})") from None
    return path.name, raw


def fingerprint_of(raw) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]
