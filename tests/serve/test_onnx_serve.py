"""`kfkd serve --model M.onnx` serves without torch: a fresh interpreter runs the real command
(uvicorn on a free port, in a thread), sends it the astronaut over HTTP, and checks that torch
was never imported; the keypoints match the torch model's for the same photo."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ASTRONAUT = ROOT / "tests" / "fixtures" / "astronaut.jpg"

SCRIPT = """
import json, os, sys, threading, time
import httpx
from kfkd_kit.cli import main
model, port, photo = sys.argv[1], sys.argv[2], sys.argv[3]
threading.Thread(target=main, args=(["serve", "--model", model, "--port", port],), daemon=True).start()
base = f"http://127.0.0.1:{port}"
deadline = time.monotonic() + 120
while True:
    try:
        if httpx.get(base + "/healthz").status_code == 200:
            break
    except httpx.TransportError:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
with open(photo, "rb") as f:
    reply = httpx.post(base + "/v1/keypoints", files=[("images", ("astronaut.jpg", f, "image/jpeg"))],
                       timeout=120)
assert reply.status_code == 200, reply.text
print(json.dumps({"answer": reply.json(), "model": httpx.get(base + "/v1/model").json(),
                  "torch": "torch" in sys.modules}))
sys.stdout.flush()
os._exit(0)
"""


@pytest.mark.slow
def test_an_onnx_model_serves_without_torch(tiny_onnx, tiny_model):
    pytest.importorskip("fastapi")
    from kfkd_kit.serve.service import KeypointService
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_onnx), str(port), str(ASTRONAUT)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout.splitlines()[-1])
    assert found["torch"] is False, "serving an .onnx model imported torch"
    # MTCNN on the nets exported beside the graph, through onnxruntime
    assert found["model"]["backend"] == "onnxruntime" and found["model"]["detector"] == "mtcnn"
    assert f"at http://127.0.0.1:{port}/" in run.stdout
    [image] = found["answer"]["images"]
    torch_service = KeypointService(tiny_model, detector="mtcnn")     # facenet-pytorch's MTCNN
    [torch_image] = torch_service.keypoints([("astronaut.jpg", ASTRONAUT.read_bytes())])["images"]
    assert len(image["faces"]) == len(torch_image["faces"]) >= 1
    for face, same in zip(image["faces"], torch_image["faces"]):
        np.testing.assert_allclose(list(face["box"].values()), list(same["box"].values()),
                                   atol=0.02)
        np.testing.assert_allclose([[p["x"], p["y"]] for p in face["keypoints"].values()],
                                   [[p["x"], p["y"]] for p in same["keypoints"].values()], atol=0.01)
