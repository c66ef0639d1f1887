"""photo/onnxgraph.py used directly, without the CLI or a trained net: a tiny linear torch
module stands in for a KeypointNet, and a model object that computes the same in torch."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from kfkd_kit.keypoints import CENTER, N_PIXELS, SCALE
from kfkd_kit.photo import onnxgraph
from kfkd_kit.photo.onnxmodel import OnnxKeypoints
from kfkd_kit.utils.modelfile import sha256_of


class TorchModel:
    """What a fitted pipeline's predict gives for ``module``: pixels -> keypoints in px."""

    def __init__(self, module, offset=0.0):
        self.module, self.offset = module, offset

    def predict(self, X):
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(X, np.float32)) / 255.0
            return (self.module(x) * SCALE + CENTER).numpy() + self.offset


@pytest.fixture
def linear():
    torch.manual_seed(0)
    module = torch.nn.Linear(N_PIXELS, 30)
    with torch.no_grad():
        module.weight.mul_(0.01)
    return module.eval()


def test_the_graph_computes_what_torch_does_and_its_sha256_is_recorded(linear, tmp_path):
    source = tmp_path / "tiny.joblib"
    source.write_bytes(b"stands in for the saved model")
    out = onnxgraph.write_graph(TorchModel(linear), [SimpleNamespace(module_=linear)], source,
                                tmp_path / "tiny.onnx", 97.25, say=lambda line: None)
    record = json.loads((tmp_path / "tiny.json").read_text())
    assert record["model_file"]["sha256"] == sha256_of(out)
    assert record["onnx"]["source_sha256"] == sha256_of(source)
    assert record["onnx"]["check"]["max_abs_diff_px"] <= onnxgraph.TOLERANCE
    assert record["onnx"]["mirror_sum"] == 97.25 and record["onnx"]["nets_averaged"] == 1
    graph = OnnxKeypoints(out)
    assert graph.mirror_sum == 97.25 and graph.layout is None
    # exported without MTCNN's nets: predict finds faces with Haar
    from kfkd_kit.commands.predict import pick_detector
    assert graph.mtcnn is None and graph.detector(40) is None
    assert pick_detector(graph, "auto", 40) == "haar"
    crops = onnxgraph.check_batch(8, seed=5)
    np.testing.assert_allclose(graph(crops), TorchModel(linear).predict(crops.reshape(8, -1)),
                               atol=onnxgraph.TOLERANCE)


def test_a_graph_that_disagrees_with_torch_is_not_written(linear, tmp_path):
    source = tmp_path / "tiny.joblib"
    source.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"differ from torch's by up to 0\.5 px .*nothing written"):
        onnxgraph.write_graph(TorchModel(linear, offset=0.5), [SimpleNamespace(module_=linear)],
                              source, tmp_path / "tiny.onnx", 97.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.joblib"]


def test_the_check_batch_is_half_faces_half_smooth_noise():
    batch = onnxgraph.check_batch(10, seed=0)
    assert batch.shape == (10, 96, 96) and batch.dtype == np.float32
    assert 0 <= batch.min() and batch.max() <= 255
    np.testing.assert_array_equal(batch, onnxgraph.check_batch(10, seed=0))
    assert not np.array_equal(batch, onnxgraph.check_batch(10, seed=1))
