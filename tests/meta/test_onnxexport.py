"""A stack exports as one ONNX graph: every member's nets, each member's mean, then the
meta-model's linear map; onnxruntime gives the stack's own keypoints, without torch's help."""
import json

import numpy as np
import pytest

from kfkd_kit.cli import main
from kfkd_kit.utils.modelfile import save_model


@pytest.mark.slow
def test_a_stack_of_a_net_and_a_fold_ensemble_exports_as_one_graph(tmp_path, capsys):
    from kfkd_kit import configs
    from kfkd_kit.data.synthetic import make_faces
    from kfkd_kit.meta.ensemble import FoldEnsemble
    from kfkd_kit.meta.stack import StackedKeypoints
    from kfkd_kit.photo import framing
    from kfkd_kit.photo.onnxgraph import check_batch
    from kfkd_kit.photo.onnxmodel import OnnxKeypoints
    X, y = make_faces(90, seed=2)

    def net(lr):
        return configs.build("net1", epochs=2, device="cpu", precision="fp32", verbose=0, lr=lr)
    one = net(0.01).fit(X, y)
    folds = FoldEnsemble(net(0.03), cv=2).fit(X, y)
    rng = np.random.default_rng(0)
    coef = rng.uniform(0.0, 0.05, (60, 30)) + np.vstack([np.eye(30) * 0.3, np.eye(30) * 0.6])
    intercept = rng.uniform(-1, 1, 30)
    stack = StackedKeypoints.from_fitted([one, folds], coef, intercept, "elasticnet",
                                         n_features=X.shape[1])
    framing.attach_layout(stack, y)
    path = tmp_path / "stack.joblib"
    save_model(stack, path, {"net": "stack"})
    assert main(["export", "--model", str(path)]) == 0
    capsys.readouterr()
    crops = check_batch(16, seed=4)
    expected = stack.predict(crops.reshape(16, -1))
    mean_of_members = stack.predict_members(crops.reshape(16, -1)).mean(0)
    assert np.abs(expected - mean_of_members).max() > 0.5      # the map matters here
    got = OnnxKeypoints(path.with_suffix(".onnx"))(crops)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    record = json.loads(path.with_suffix(".json").read_text())["onnx"]
    assert record["nets_stacked"] == 3 and "nets_averaged" not in record
