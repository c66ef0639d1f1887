"""`kfkd serve`'s JSON API through FastAPI's TestClient: the answer is predict's CSV as JSON,
every bad input is a one-line 4xx and the server serves on, a full queue is a 503 with
Retry-After, and a missing model is one line naming the command that trains one."""
import copy
import json
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kfkd_kit.cli import main
from kfkd_kit.keypoints import FEATURE_NAMES
from kfkd_kit.photo.align import BOX_COLUMNS, COLUMNS


pytest.importorskip("fastapi")
pytest.importorskip("httpx")
ASTRONAUT = Path(__file__).resolve().parents[1] / "fixtures" / "astronaut.jpg"


def client(service, **limits):
    from fastapi.testclient import TestClient

    from kfkd_kit.serve.app import create_app
    return TestClient(create_app(service, **limits))


def post(c, *files):
    return c.post("/v1/keypoints", files=[("images", f) for f in files])


def astronaut():
    return ("astronaut.jpg", ASTRONAUT.read_bytes(), "image/jpeg")


def bomb_png(side=40_000) -> bytes:
    """A PNG of a few dozen bytes whose header declares side x side pixels."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.slow
def test_the_answer_is_predicts_csv_as_json(service, tiny_model, tmp_path):
    with client(service) as c:
        reply = post(c, astronaut())
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model"] == {"name": "tiny.joblib", "sha256": service.sha256}
    assert body["columns"] == list(COLUMNS)
    [image] = body["images"]
    assert (image["image"], image["width"], image["height"]) == ("astronaut.jpg", 512, 512)
    assert image["faces"], "the Haar detector finds the astronaut's face"
    # the same numbers as `kfkd predict` writes for the same photo, model and detector
    assert main(["predict", "--model", str(tiny_model), "--detector", "haar", "--out",
                 str(tmp_path / "k.csv"), str(ASTRONAUT)]) == 0
    table = pd.read_csv(tmp_path / "k.csv")
    assert len(table) == len(image["faces"])
    for face, (_, row) in zip(image["faces"], table.iterrows()):
        assert face["face"] == row["face"]
        assert [face["box"][k] for k in BOX_COLUMNS] == pytest.approx(row[list(BOX_COLUMNS)].tolist())
        assert len(face["keypoints"]) == 15
        found = [face["keypoints"][name[:-2]][name[-1]] for name in FEATURE_NAMES]
        np.testing.assert_allclose(found, row[list(FEATURE_NAMES)].to_numpy(float), atol=1e-3)


def test_two_images_in_one_request_keep_their_order_and_names(service):
    with client(service) as c:
        reply = post(c, astronaut(), ("same.png", _png(64, 48), "image/png"), astronaut())
    assert reply.status_code == 200, reply.text
    images = reply.json()["images"]
    assert [i["image"] for i in images] == ["astronaut.jpg", "same.png", "astronaut.jpg"]
    assert (images[1]["width"], images[1]["height"], images[1]["faces"]) == (64, 48, [])
    assert images[0]["faces"] == images[2]["faces"] != []


@pytest.mark.slow
def test_min_score_drops_faces_the_detector_scores_under_it(service, tiny_model):
    from kfkd_kit.serve.service import KeypointService
    with client(service) as c:
        [face] = post(c, astronaut()).json()["images"][0]["faces"]
    strict = KeypointService(tiny_model, detector="haar", min_score=face["score"] + 1e-6)
    assert strict.info["min_score"] == face["score"] + 1e-6
    with client(strict) as c:
        assert post(c, astronaut()).json()["images"][0]["faces"] == []
    kept = KeypointService(tiny_model, detector="haar", min_score=face["score"])
    with client(kept) as c:
        assert post(c, astronaut()).json()["images"][0]["faces"] == [face]


def _png(width, height) -> bytes:
    import io

    from PIL import Image
    out = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 120, np.uint8)).save(out, format="PNG")
    return out.getvalue()


def test_a_new_column_flows_through_under_its_own_name():
    from kfkd_kit.serve.service import face_json
    assert COLUMNS[6] == "score"                   # the detector's, after the box
    columns = (*COLUMNS[:7], "quality", *COLUMNS[7:])
    row = {c: float(i) for i, c in enumerate(columns) if c != "image"}
    row.update(image="a.jpg", face=0, score=np.float32(0.75))
    face = face_json(row, columns)
    assert face["score"] == 0.75 and type(face["score"]) is float
    assert face["quality"] == 7.0
    assert face["box"] == {"x": 2.0, "y": 3.0, "w": 4.0, "h": 5.0}
    assert face["keypoints"]["left_eye_center"] == {"x": 8.0, "y": 9.0}
    assert "image" not in face and json.dumps(face)
    row["nose_tip_x"] = float("nan")               # JSON has no NaN: null
    assert face_json(row, columns)["keypoints"]["nose_tip"]["x"] is None


def test_model_health_schema_and_no_cdn(service, tiny_model):
    from kfkd_kit.utils.modelfile import sha256_of
    with client(service) as c:
        record = c.get("/v1/model").json()
        assert record["name"] == "tiny.joblib" and record["sha256"] == sha256_of(tiny_model)
        assert record["backend"] == "torch" and record["detector"] == "haar"
        assert record["record"] == json.loads(tiny_model.with_suffix(".json").read_text())
        assert c.get("/healthz").json() == {"status": "ok", "waiting": 0, "queue": 8}
        schema = c.get("/openapi.json").json()
        assert "multipart/form-data" in schema["paths"]["/v1/keypoints"]["post"]["requestBody"]["content"]
        assert c.get("/docs").status_code == 404 and c.get("/redoc").status_code == 404
        page = c.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # self-contained: nothing loaded from elsewhere
    assert "http://" not in page.text and "https://" not in page.text and "@import" not in page.text
    assert 'type="file"' in page.text and "getUserMedia" in page.text


def test_bad_inputs_are_one_line_4xx_and_the_server_serves_on(service):
    good = ASTRONAUT.read_bytes()
    small = copy.copy(service)
    small.max_pixels = 100_000                     # the astronaut has 262,144
    cases = [
        ("a non-image", dict(files=[("images", ("notes.jpg", b"just text\n", "image/jpeg"))]),
         422, "notes.jpg: not an image Pillow can read"),
        ("a truncated JPEG", dict(files=[("images", ("cut.jpg", good[:len(good) // 3], "image/jpeg"))]),
         422, "cut.jpg: cannot read the image (truncated?)"),
        ("a zero-byte upload", dict(files=[("images", ("empty.jpg", b"", "image/jpeg"))]),
         422, "empty.jpg: an empty file"),
        ("a part that is not an image", dict(files=[("images", ("a.jpg", good, "text/plain"))]),
         415, "a.jpg: text/plain is not an image type"),
        ("a body that is not multipart", dict(content=b'{"image": 1}',
                                              headers={"content-type": "application/json"}),
         415, "not application/json"),
        ("no file", dict(files=[("note", (None, b"a.jpg"))]), 422, "no image in the request"),
        ("a malformed multipart body", dict(content=b"--x\r\nnonsense",
                                            headers={"content-type": "multipart/form-data"}),
         400, "not a readable multipart body"),
        ("a decompression bomb", dict(files=[("images", ("bomb.png", bomb_png(), "image/png"))]),
         413, "bomb.png: too large to read safely"),
        ("one good and one bad image", dict(files=[("images", ("ok.jpg", good, "image/jpeg")),
                                                   ("images", ("bad.png", b"\x89PNG", "image/png"))]),
         422, "bad.png:"),
    ]
    with client(service, max_upload=len(good) + 4096) as c:
        for what, request, status, message in cases:
            reply = c.post("/v1/keypoints", **request)
            assert reply.status_code == status, (what, reply.text)
            error = reply.json()
            assert list(error) == ["error"] and message in error["error"], (what, error)
            assert "\n" not in error["error"], what
            assert post(c, astronaut()).status_code == 200, f"not serving after {what}"
        reply = post(c, ("big.jpg", good + b"\0" * 8192, "image/jpeg"))
        assert reply.status_code == 413 and "allowed" in reply.json()["error"]
        assert post(c, astronaut()).status_code == 200
        # sent in chunks without a Content-Length: counted as it arrives, refused past the limit
        body = (b"--b\r\nContent-Disposition: form-data; name=images; filename=big.jpg\r\n"
                b"Content-Type: image/jpeg\r\n\r\n" + good + b"\0" * 8192 + b"\r\n--b--\r\n")
        reply = c.post("/v1/keypoints", content=(body[i:i + 4096] for i in range(0, len(body), 4096)),
                       headers={"content-type": "multipart/form-data; boundary=b"})
        assert reply.status_code == 413, reply.text
        assert reply.json()["error"] == f"the request is more than the {len(good) + 4096:,} bytes allowed"
        assert post(c, astronaut()).status_code == 200
    with client(small) as c:
        reply = post(c, astronaut())
        assert reply.status_code == 413
        assert reply.json()["error"] == "astronaut.jpg: 512x512 pixels, more than the 100,000 allowed"


def test_a_full_queue_answers_503_with_retry_after(service):
    started, release = threading.Event(), threading.Event()

    class Blocking:
        """The real service, held at the start of each call until ``release``."""
        info = service.info

        def keypoints(self, uploads):
            started.set()
            assert release.wait(60)
            return service.keypoints(uploads)

    with client(Blocking(), queue_size=1) as c:
        replies = {}

        def send(key):
            replies[key] = post(c, astronaut())

        first = threading.Thread(target=send, args=("first",))
        first.start()
        assert started.wait(30)                    # the worker holds the first request
        second = threading.Thread(target=send, args=("second",))
        second.start()
        deadline = time.monotonic() + 30
        while c.app.state.jobs.waiting < 1:        # the second waits in the queue
            assert time.monotonic() < deadline
            time.sleep(0.01)
        third = post(c, astronaut())
        assert third.status_code == 503
        assert int(third.headers["Retry-After"]) >= 1
        assert third.json()["error"].startswith("busy: 1 requests are waiting already")
        release.set()
        first.join(60), second.join(60)
        assert replies["first"].status_code == replies["second"].status_code == 200
        assert post(c, astronaut()).status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize("command", ["serve", "predict"])
def test_no_model_yet_is_one_line_naming_the_command_that_trains_one(command, tmp_path,
                                                                     monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = [command] + ([str(ASTRONAUT)] if command == "predict" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (f"kfkd {command}: error: no model at models/net1.joblib: train one with "
                   "`make train`\n")
    assert list(tmp_path.iterdir()) == []


def test_other_hosts_are_warned_about_in_one_line():
    from kfkd_kit.cli import build_parser
    from kfkd_kit.serve.app import network_warning
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.model) == ("127.0.0.1", 8000, "models/net1.joblib")
    assert network_warning("127.0.0.1") is None and network_warning("localhost") is None
    line = network_warning("0.0.0.0")
    assert "reachable from the network" in line and "\n" not in line
