"""Kaggle's servers: download the competition files, upload a submission.

Public API::

    download(folder, competition=COMPETITION, api=None, say=print) -> list[Path]
    upload(csv_path, message, competition=COMPETITION, api=None)  -> str (Kaggle's answer)
    authenticated_api()                                            -> kaggle's KaggleApi
    KaggleError                one-line message for the user; the CLI prints it and exits 2
                               (commands/_shared.py kaggle_call)

Both go through the official ``kaggle`` package (``KaggleApi.competition_download_files``
and ``competition_submit``), imported only here and only when called, so the rest of the
toolkit works without it. Credentials are whatever the package accepts: ``kaggle.json``
in ``$KAGGLE_CONFIG_DIR`` (else ``~/.kaggle/``), ``KAGGLE_USERNAME`` + ``KAGGLE_KEY``, or
its newer access tokens.

Download: Kaggle serves one ``<competition>.zip`` holding ``training.zip``, ``test.zip``,
``IdLookupTable.csv`` and ``SampleSubmission.csv``. Everything is downloaded and unpacked in
a hidden staging folder inside the target folder; each inner zip's single CSV becomes
``training.csv`` / ``test.csv`` (the first form ``data.find_file`` looks for, so an older
``training.zip`` or ``.csv.gz`` in the folder cannot shadow it). Only when every file is
complete and checked are they renamed into place, one ``os.replace`` each; on any failure the
staging folder is removed and the target folder is as it was.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

COMPETITION = "facial-keypoints-detection"
KAGGLE_VERSION = "2.2.5"          # the version requirements.txt pins
EXPECTED = ("training.csv", "test.csv", "IdLookupTable.csv", "SampleSubmission.csv")
_STAGING_PREFIX = ".kaggle-download-"


class KaggleError(Exception):
    """Something Kaggle-side went wrong; the message is what the user should read and do."""


# Set but empty (a common leftover in shells and CI), these would be read as credentials
# and override kaggle.json: while the package reads its configuration they are hidden.
_CREDENTIAL_VARIABLES = ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN")


@contextlib.contextmanager
def _without_empty_credentials():
    empty = {name: os.environ[name] for name in _CREDENTIAL_VARIABLES
             if name in os.environ and not os.environ[name].strip()}
    for name in empty:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(empty)


def _import_kaggle_api():
    try:
        # Importing the package runs its own authenticate(), which prints a help page when
        # there are no credentials: keep that off the terminal, we say it in our words.
        with contextlib.redirect_stdout(io.StringIO()), _without_empty_credentials():
            from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError:
        raise KaggleError(f"the kaggle package is not installed: run `make setup` or "
                          f"`pip install kaggle=={KAGGLE_VERSION}`") from None
    return KaggleApi


def _config_path(api) -> Path:
    config_dir = os.environ.get("KAGGLE_CONFIG_DIR")
    if config_dir:             # the class reads it once, at import: honour it as it is now
        api.config_dir = config_dir
        api.config = os.path.join(config_dir, api.config_file)
    return Path(api.config)


def _no_credentials(config: Path) -> str:
    return (f"no Kaggle credentials. Create an API token at https://www.kaggle.com/settings/api "
            f"and save the kaggle.json it gives you as {config} (chmod 600), or set "
            f"KAGGLE_USERNAME and KAGGLE_KEY (or KAGGLE_API_TOKEN; KAGGLE_CONFIG_DIR chooses "
            f"another folder for kaggle.json)")


def authenticated_api():
    """kaggle's ``KaggleApi``, authenticated; KaggleError (one line) without credentials.
    Credential variables set to empty strings count as absent."""
    api = _import_kaggle_api()()
    config = _config_path(api)
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said), _without_empty_credentials():
            api.authenticate()
    except SystemExit:           # the package prints a help page and calls exit(1)
        raise KaggleError(_no_credentials(config)) from None
    for line in said.getvalue().splitlines():
        if line.startswith("Warning"):      # e.g. a kaggle.json readable by other users
            print(line, file=sys.stderr)
    return api


def _http_message(exc) -> str:
    response = getattr(exc, "response", None)
    text = str(exc)
    if response is not None:
        try:
            text = response.json().get("message") or text
        except Exception:
            pass
    return " ".join(text.split())


@contextlib.contextmanager
def _kaggle_errors(competition: str, doing: str):
    """requests' exceptions -> KaggleError with what to do about them."""
    import requests
    try:
        yield
    except requests.exceptions.HTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        said = _http_message(exc)
        url = f"https://www.kaggle.com/competitions/{competition}"
        if status == 401:
            raise KaggleError(f"{doing}: Kaggle does not accept these credentials (HTTP 401: "
                              f"{said}); make a new token at https://www.kaggle.com/settings/api"
                              ) from None
        if status == 403:
            raise KaggleError(f"{doing}: Kaggle refused (HTTP 403: {said}); accept the "
                              f"competition's rules at {url}/rules (\"Join Competition\", "
                              f"logged in as the user of your token), then run this again"
                              ) from None
        if status == 404:
            raise KaggleError(f"{doing}: Kaggle has no competition {competition!r} (HTTP 404: "
                              f"{said})") from None
        raise KaggleError(f"{doing}: Kaggle answered HTTP {status}: {said}") from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise KaggleError(f"{doing}: cannot reach Kaggle ({type(exc).__name__}: {reason}); "
                          f"check the network connection or proxy, then run this again"
                          ) from None


def _unpack(archive: Path, into: Path) -> list[Path]:
    """The competition zip -> ``into``/training.csv, test.csv, IdLookupTable.csv, ..."""
    def bad(why):
        return KaggleError(f"download: {archive.name} from Kaggle {why}; nothing was changed, "
                           f"run this again")
    try:
        with zipfile.ZipFile(archive) as outer:
            names = {Path(n).name: n for n in outer.namelist() if not n.endswith("/")}
            written = []
            for name, member in names.items():
                if name.startswith(".") or not name:
                    continue
                target = into / name
                with outer.open(member) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                if target.suffix.lower() == ".zip":
                    target = _unpack_inner(target, bad)
                written.append(target)
    except zipfile.BadZipFile as exc:
        raise bad(f"is not a valid zip ({exc})") from None
    missing = [n for n in EXPECTED[:3] if not (into / n).is_file()]
    if missing:
        raise bad(f"lacks {', '.join(missing)} (it holds {', '.join(sorted(names)) or 'nothing'})")
    return written


def _unpack_inner(inner: Path, bad) -> Path:
    """training.zip holding training.csv -> training.csv (the zip is removed)."""
    try:
        with zipfile.ZipFile(inner) as z:
            members = [n for n in z.namelist() if not n.endswith("/")]
            if len(members) != 1 or not members[0].lower().endswith(".csv"):
                raise bad(f"holds {inner.name} with {members}, expected one CSV")
            target = inner.with_name(inner.stem + ".csv")
            with z.open(members[0]) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
    except zipfile.BadZipFile as exc:
        raise bad(f"holds a broken {inner.name} ({exc})") from None
    inner.unlink()
    return target


def download(folder, competition: str = COMPETITION, api=None, say=print) -> list[Path]:
    """Download ``competition``'s files into ``folder`` (created), unpacked; their paths.

    All or nothing: on any error (KaggleError, one line) ``folder`` keeps what it held.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise KaggleError(f"download: {folder} is not a folder")
    api = api or authenticated_api()
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=_STAGING_PREFIX))
    try:
        say(f"downloading Kaggle's {competition} files into {folder}/")
        with _kaggle_errors(competition, "download"), \
                contextlib.redirect_stdout(io.StringIO()):
            api.competition_download_files(competition, path=str(staging), force=True, quiet=True)
        archives = [p for p in staging.iterdir() if p.suffix == ".zip"]
        if len(archives) != 1:
            raise KaggleError(f"download: expected one {competition}.zip from Kaggle, got "
                              f"{sorted(p.name for p in staging.iterdir())}")
        unpacked = staging / "files"
        unpacked.mkdir()
        names = [p.name for p in _unpack(archives[0], unpacked)]
        placed = []
        for name in names:                  # every file complete: now rename them into place
            os.replace(unpacked / name, folder / name)
            placed.append(folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    stems = {Path(n).stem.lower() for n in names}
    shadowed = [p.name for p in sorted(folder.iterdir()) if p.is_file() and p.name not in names
                and p.name.lower().split(".")[0] in stems]
    if shadowed:
        say(f"NOTE: {folder}/ also holds {', '.join(shadowed)}: the new .csv files are the ones read")
    return placed


def upload(csv_path, message: str, competition: str = COMPETITION, api=None) -> str:
    """Submit ``csv_path`` to ``competition`` with ``message``; Kaggle's answer, one line.

    A refused or failed upload is a KaggleError; the local file is never touched.
    """
    csv_path = Path(csv_path)
    api = api or authenticated_api()
    said = io.StringIO()
    with _kaggle_errors(competition, f"upload of {csv_path}"), contextlib.redirect_stdout(said):
        result = api.competition_submit(str(csv_path), message, competition, quiet=True)
    answer = " ".join((getattr(result, "message", "") or "").split())
    failed = getattr(api, "COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE", "Could not submit")
    if not answer or answer.startswith(failed):
        detail = " ".join(said.getvalue().split())[:200]
        raise KaggleError(f"upload of {csv_path}: Kaggle did not take the file "
                          f"({answer or 'no answer'}{': ' + detail if detail else ''}); "
                          f"the CSV stays at {csv_path}")
    ref = getattr(result, "ref", 0)
    return (f"Kaggle: {answer}" + (f" (submission {ref})" if ref else "") +
            f"; scores at https://www.kaggle.com/competitions/{competition}/submissions")
