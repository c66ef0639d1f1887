"""The models `kfkd serve`'s tests serve: net1 fitted for two epochs on the built-in synthetic
faces and saved as `kfkd train` saves it (with its JSON and mean layout), and its ONNX export.
The synthetic faces teach it nothing about photos; the tests check the server, not the net."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ASTRONAUT = ROOT / "tests" / "fixtures" / "astronaut.jpg"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from kfkd_kit import configs
    from kfkd_kit.data.synthetic import make_faces
    from kfkd_kit.photo import framing
    from kfkd_kit.utils.modelfile import save_model
    X, y = make_faces(120, seed=0)
    model = configs.build("net1", epochs=2, device="cpu", precision="fp32", verbose=0)
    model.fit(X, y)
    framing.attach_layout(model, y)
    path = tmp_path_factory.mktemp("model") / "tiny.joblib"
    save_model(model, path, {"net": "net1"})
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tiny_model):
    from kfkd_kit.meta.onnxexport import export_onnx
    return Path(export_onnx(tiny_model, tiny_model.with_suffix(".onnx")))


@pytest.fixture(scope="session")
def service(tiny_model):
    """The tiny model served with the Haar detector (MTCNN would load facenet's nets)."""
    from kfkd_kit.serve.service import KeypointService
    return KeypointService(tiny_model, detector="haar")
