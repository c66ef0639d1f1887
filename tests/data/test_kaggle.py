"""`kfkd download` and `kfkd submit --kaggle` against a fake Kaggle, with no network.

Only the transport is fake: ``requests.adapters.HTTPAdapter.send``, the one method every
request of the ``kaggle`` package goes through (its ``kagglesdk`` HTTP client's
``Session.send``, the redirect to the storage URL, and the ``session.put`` of the upload,
which mounts its own ``HTTPAdapter``), is replaced by ``FakeKaggle``, which answers the
request the way api.kaggle.com and its file storage do and hands a urllib3 response to the
adapter's real ``build_response``. Everything above runs for real: kfkd_kit's code, the
package's ``authenticate`` (credentials from kaggle.json in KAGGLE_CONFIG_DIR or
KAGGLE_USERNAME/KAGGLE_KEY), ``competition_download_files`` / ``competition_submit``, its
request objects and JSON, requests' auth, redirects and ``raise_for_status``, the package's
streaming download into the file, and our unpacking.

HOME, XDG_CONFIG_HOME and KAGGLE_CONFIG_DIR point into tmp_path, so no real credentials are
read and nothing is written outside it.
"""
import importlib.util
import io
import json
import os
import zipfile
from contextlib import contextmanager
from pathlib import Path

import pytest

# not imported here: importing kaggle authenticates with the real HOME (see kaggle_world)
if importlib.util.find_spec("kaggle") is None:
    pytest.skip("the kaggle package is not installed", allow_module_level=True)
import requests  # noqa: E402  (the kaggle package's dependency)
import urllib3  # noqa: E402

from kfkd_kit import data  # noqa: E402
from kfkd_kit.cli import main  # noqa: E402
from kfkd_kit.data import write_kaggle_dataset  # noqa: E402

pytestmark = pytest.mark.slow   # every test here runs a command (against the fake Kaggle)

COMPETITION = "facial-keypoints-detection"
STORAGE = ("https://storage.googleapis.com/kaggle-competitions-data/kaggle-v2/3486/"
           "facial-keypoints-detection.zip?GoogleAccessId=web-data&Expires=1&Signature=abc")
UPLOAD_URL = "https://www.kaggle.com/api/v1/upload/blob/xyz"
RULES = "You must accept this competition's rules before you'll be able to download files."


def competition_zip(folder: Path) -> bytes:
    """Kaggle's facial-keypoints-detection.zip, from synthetic files: training.zip and
    test.zip (each holding its CSV), IdLookupTable.csv and SampleSubmission.csv."""
    paths = write_kaggle_dataset(folder, n_train=60, n_test=8, seed=3)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as outer:
        for key in ("training", "test"):
            inner = io.BytesIO()
            with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z:
                z.write(paths[key], f"{key}.csv")
            outer.writestr(f"{key}.zip", inner.getvalue())
        outer.write(paths["lookup"], "IdLookupTable.csv")
        outer.write(paths["sample_submission"], "SampleSubmission.csv")
    return buffer.getvalue()


class FakeKaggle:
    """Stands in for HTTPAdapter.send: api.kaggle.com's answers, and its storage's."""

    def __init__(self, zip_bytes=b"", download_status=200, put_status=200, create_error=None,
                 offline=False):
        self.zip_bytes, self.download_status = zip_bytes, download_status
        self.put_status, self.create_error, self.offline = put_status, create_error, offline
        self.seen = []                    # (method, url, headers, body) of every request
        self.uploaded = None

    def send(self, adapter, request, **kwargs):
        body = request.body
        if hasattr(body, "read"):         # the upload streams the file
            body = body.read()
        self.seen.append((request.method, request.url, dict(request.headers), body))
        if self.offline:
            raise requests.exceptions.ConnectionError(
                "HTTPSConnectionPool(host='api.kaggle.com', port=443): Max retries exceeded "
                "(Failed to resolve 'api.kaggle.com')")
        status, headers, content = self.answer(request.method, request.url, body)
        raw = urllib3.HTTPResponse(body=io.BytesIO(content), headers=headers, status=status,
                                   reason=requests.status_codes._codes[status][0].upper(),
                                   preload_content=False, decode_content=False)
        return adapter.build_response(request, raw)

    @staticmethod
    def _json(status, payload):
        content = json.dumps(payload).encode()
        return status, {"Content-Type": "application/json", "Content-Length": str(len(content))}, content

    def answer(self, method, url, body):
        if url.endswith("/competitions.CompetitionApiService/DownloadDataFiles"):
            assert json.loads(body) == {"competitionName": COMPETITION}
            if self.download_status != 200:
                return self._json(self.download_status,
                                  {"code": self.download_status, "message": RULES})
            return 302, {"Location": STORAGE, "Content-Length": "0"}, b""
        if method == "GET" and url == STORAGE:
            return 200, {"Content-Type": "application/zip", "Content-Length": str(len(self.zip_bytes)),
                         "Last-Modified": "Tue, 01 Jul 2014 10:00:00 GMT"}, self.zip_bytes
        if url.endswith("/competitions.CompetitionApiService/StartSubmissionUpload"):
            request = json.loads(body)
            assert request["competitionName"] == COMPETITION and request["contentLength"] > 0
            return self._json(200, {"token": "blob-token-1", "createUrl": UPLOAD_URL})
        if method == "PUT" and url == UPLOAD_URL:
            self.uploaded = body
            return self.put_status, {"Content-Length": "0"}, b""
        if url.endswith("/competitions.CompetitionApiService/CreateSubmission"):
            request = json.loads(body)
            assert request["competitionName"] == COMPETITION
            assert request["blobFileTokens"] == "blob-token-1"
            self.description = request.get("submissionDescription")
            if self.create_error:
                return self._json(400, {"code": 400, "message": self.create_error})
            return self._json(200, {"message": "Successfully submitted to Facial Keypoints Detection",
                                    "ref": 41234567})
        return self._json(404, {"code": 404, "message": f"fake Kaggle: no route {method} {url}"})


@contextmanager
def kaggle_world(tmp: Path, fake: FakeKaggle, credentials="env"):
    """HOME and the kaggle config in ``tmp``; credentials from "env", "file", "empty env"
    (the variables set to empty strings) or None."""
    with pytest.MonkeyPatch.context() as mp:
        for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_API_ENVIRONMENT"):
            mp.delenv(name, raising=False)
        home = tmp / "home"
        (home / ".config").mkdir(parents=True, exist_ok=True)
        mp.setenv("HOME", str(home))
        mp.setenv("XDG_CONFIG_HOME", str(home / ".config"))
        config = tmp / "kaggle-config"
        config.mkdir(exist_ok=True)
        mp.setenv("KAGGLE_CONFIG_DIR", str(config))
        if credentials == "env":
            mp.setenv("KAGGLE_USERNAME", "alice")
            mp.setenv("KAGGLE_KEY", "0123456789abcdef")
        elif credentials == "empty env":   # set, but to nothing
            for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
                mp.setenv(name, "")
        elif credentials == "file":
            key = config / "kaggle.json"
            key.write_text(json.dumps({"username": "bob", "key": "fedcba9876543210"}))
            key.chmod(0o600)
        mp.setattr(requests.adapters.HTTPAdapter, "send",
                   lambda adapter, request, **kw: fake.send(adapter, request, **kw))
        yield fake


def _basic_auth(headers, user, key):
    import base64
    return headers.get("Authorization") == "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()


@pytest.fixture(scope="module")
def downloaded(tmp_path_factory):
    """`kfkd download` into a fresh folder, then `kfkd train --epochs 1` on it."""
    root = tmp_path_factory.mktemp("kaggle")
    fake = FakeKaggle(zip_bytes=competition_zip(root / "made"))
    folder = root / "data"
    with kaggle_world(root, fake, credentials="file"):
        assert main(["download", "--data", str(folder)]) == 0
    model = root / "models" / "net1.joblib"
    assert main(["train", "--data", str(folder), "--epochs", "1", "--quiet", "--model", str(model),
                 "--device", "cpu"]) == 0
    return root, folder, model, fake


def test_download_unpacks_kaggle_zip_so_train_and_submit_find_the_files(downloaded):
    root, folder, model, fake = downloaded
    names = {p.name for p in folder.iterdir()}
    assert names == {"IdLookupTable.csv", "SampleSubmission.csv", "test.csv", "training.csv"}
    assert (folder / "training.csv").read_bytes() == (root / "made" / "training.csv").read_bytes()
    assert len(data.load_training(folder)) == 60 and data.load_training(folder).source.name == "training.csv"
    assert len(data.load_test(folder)) == 8 and len(data.load_lookup(folder)) > 0
    meta = json.loads(model.with_suffix(".json").read_text())
    assert meta["metrics"]["epochs_run"] == 1 and meta["data"]["rows"] == 60
    # the real client: the API call with the key from kaggle.json, then the redirect to storage
    (m1, url1, h1, _), (m2, url2, _, _) = fake.seen
    assert (m1, m2, url2) == ("POST", "GET", STORAGE)
    assert url1 == "https://api.kaggle.com/v1/competitions.CompetitionApiService/DownloadDataFiles"
    assert _basic_auth(h1, "bob", "fedcba9876543210")


def test_download_replaces_older_files_and_leaves_nothing_half_done(tmp_path, capsys):
    fake = FakeKaggle(zip_bytes=competition_zip(tmp_path / "made"))
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "training.zip").write_bytes(b"an older copy")
    (folder / "test.csv").write_text("old\n")
    with kaggle_world(tmp_path, fake):
        assert main(["download", "--data", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "NOTE:" in out and "training.zip" in out                # shadowed, and said so
    assert (folder / "test.csv").read_bytes() == (tmp_path / "made" / "test.csv").read_bytes()
    assert data.find_file(folder, "training").name == "training.csv"
    assert not [p for p in folder.iterdir() if p.name.startswith(".kaggle-download-")]


def test_no_credentials_says_what_to_do_and_exits_2(tmp_path, capsys):
    fake = FakeKaggle()
    with kaggle_world(tmp_path, fake, credentials=None):
        code = main(["download", "--data", str(tmp_path / "data")])
    out, err = capsys.readouterr()
    assert code == 2 and not fake.seen and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kfkd download: error: no Kaggle credentials")
    assert str(tmp_path / "kaggle-config" / "kaggle.json") in err      # KAGGLE_CONFIG_DIR
    assert "https://www.kaggle.com/settings/api" in err and "KAGGLE_USERNAME" in err
    assert "Authentication required" not in out + err                   # the package's own page
    assert not (tmp_path / "data").exists()


def test_credential_variables_set_but_empty_are_no_credentials(tmp_path, capsys):
    fake = FakeKaggle()
    with kaggle_world(tmp_path, fake, credentials="empty env"):
        code = main(["download", "--data", str(tmp_path / "data")])
        assert os.environ["KAGGLE_USERNAME"] == os.environ["KAGGLE_KEY"] == ""  # as they were
    err = capsys.readouterr().err
    assert code == 2 and not fake.seen and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kfkd download: error: no Kaggle credentials")
    assert "cannot reach Kaggle" not in err
    assert not (tmp_path / "data").exists()


def test_empty_credential_variables_do_not_hide_kaggle_json(tmp_path, monkeypatch):
    fake = FakeKaggle(zip_bytes=competition_zip(tmp_path / "made"))
    with kaggle_world(tmp_path, fake, credentials="file"):
        monkeypatch.setenv("KAGGLE_USERNAME", "")
        monkeypatch.setenv("KAGGLE_KEY", "")
        assert main(["download", "--data", str(tmp_path / "data")]) == 0
    (_, _, headers, _), _ = fake.seen
    assert _basic_auth(headers, "bob", "fedcba9876543210")      # kaggle.json's key


def test_rules_not_accepted_403_is_one_line_and_the_folder_is_untouched(tmp_path, capsys):
    fake = FakeKaggle(download_status=403)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    with kaggle_world(tmp_path, fake):
        code = main(["download", "--data", str(folder)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "HTTP 403" in err and RULES in err
    assert f"https://www.kaggle.com/competitions/{COMPETITION}/rules" in err
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_network_failure_is_one_line(tmp_path, capsys):
    fake = FakeKaggle(offline=True)
    with kaggle_world(tmp_path, fake):
        code = main(["download", "--data", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "cannot reach Kaggle" in err and "network" in err
    assert list((tmp_path / "data").iterdir()) == []


def test_a_broken_zip_from_kaggle_changes_nothing(tmp_path, capsys):
    fake = FakeKaggle(zip_bytes=b"PK\x03\x04 not really a zip")
    with kaggle_world(tmp_path, fake):
        code = main(["download", "--data", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and "not a valid zip" in err and len(err.strip().splitlines()) == 1
    assert list((tmp_path / "data").iterdir()) == []


def _submit(downloaded, tmp_path, *extra):
    _, folder, model, _ = downloaded
    return main(["submit", "--data", str(folder), "--model", str(model),
                 "--out", str(tmp_path / "subs"), "--kaggle", *extra])


def test_submit_kaggle_uploads_the_csv_with_the_message(downloaded, tmp_path, capsys):
    fake = FakeKaggle()
    with kaggle_world(tmp_path, fake):
        assert _submit(downloaded, tmp_path, "--message", "net1, one epoch: it's a test") == 0
    lines = capsys.readouterr().out.strip().splitlines()
    csv = Path(lines[-2])
    assert csv.parent == tmp_path / "subs" and csv.is_file()
    assert fake.uploaded == csv.read_bytes()                       # the very bytes written
    assert fake.description == "net1, one epoch: it's a test"
    assert lines[-1].startswith("Kaggle: Successfully submitted") and "41234567" in lines[-1]
    assert [m for m, *_ in fake.seen] == ["POST", "PUT", "POST"]
    assert _basic_auth(fake.seen[0][2], "alice", "0123456789abcdef")


@pytest.mark.parametrize("fake", [
    FakeKaggle(create_error="Your team has used its daily Submission allowance (5) today."),
    FakeKaggle(put_status=500),
], ids=["refused", "upload-failed"])
def test_a_rejected_upload_is_one_line_and_the_csv_stays(downloaded, tmp_path, capsys, fake):
    with kaggle_world(tmp_path, fake):
        code = _submit(downloaded, tmp_path, "--message", "x")
    out, err = capsys.readouterr()
    csv = Path(out.strip().splitlines()[-1])
    assert code == 2 and csv.is_file() and csv.stat().st_size > 0
    assert len(err.strip().splitlines()) == 1 and err.startswith("kfkd submit: error: upload of")
    assert str(csv) in err and "Traceback" not in err
    if fake.create_error:
        assert fake.create_error in err and "HTTP 400" in err
    else:
        assert "Could not submit" in err


def test_message_without_kaggle_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["submit", "--message", "x"])
    assert stop.value.code == 2 and "needs --kaggle" in capsys.readouterr().err


def test_the_toolkit_imports_without_the_kaggle_package():
    import subprocess
    import sys
    code = ("import sys; sys.modules['kaggle'] = None\n"
            "import kfkd_kit.cli, kfkd_kit.data, kfkd_kit.data.submission, kfkd_kit.data.kaggle_api\n"
            "from kfkd_kit.data import kaggle_api\n"
            "try:\n    kaggle_api.authenticated_api()\n"
            "except kaggle_api.KaggleError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parents[2], check=True).stdout
    assert "the kaggle package is not installed" in out
