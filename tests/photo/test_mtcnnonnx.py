"""MTCNN without torch (photo/mtcnnonnx.py on the nets photo/mtcnngraph.py exports) against
facenet-pytorch's MTCNN on NASA's astronaut portrait; its pieces against torch's."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kfkd_kit.photo import faces, mtcnnonnx
from kfkd_kit.photo.mtcnngraph import mtcnn_graphs

ASTRONAUT = Path(__file__).resolve().parents[1] / "fixtures" / "astronaut.jpg"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The three nets exported beside a (never written) keypoint graph, and their record."""
    out = tmp_path_factory.mktemp("mtcnn") / "model.onnx"
    companions, record = mtcnn_graphs(out, "test", say=lambda line: None)
    for path, payload in companions.items():
        path.write_bytes(payload)
    return out, record


def test_the_onnx_pipeline_finds_the_face_torch_finds(exported):
    out, record = exported
    rgb = np.asarray(Image.open(ASTRONAUT).convert("RGB"))
    nets = mtcnnonnx.OnnxMTCNN.from_record(out.parent, record)
    boxes, probs, marks = nets.detect(rgb)
    want_boxes, want_probs, want_marks = faces.load_mtcnn().detect(rgb, landmarks=True)
    assert len(boxes) == len(want_boxes) == 1 and probs[0] > 0.99
    np.testing.assert_allclose(boxes, np.asarray(want_boxes, float), atol=0.5)
    np.testing.assert_allclose(marks, np.asarray(want_marks, float), atol=0.5)
    np.testing.assert_allclose(probs, np.asarray(want_probs, float), atol=1e-4)
    # the face is the astronaut's: the box holds her eyes (hand-placed, tests/photo/test_predict.py)
    x1, y1, x2, y2 = boxes[0]
    assert x1 < 194 and 259 < x2 and y1 < 93 and 156 < y2
    # (the detector's turns, ONNX against torch: tests/photo/test_predict.py's round trip)


def test_a_changed_or_missing_net_is_refused(exported, tmp_path):
    out, record = exported
    for net in ("pnet", "rnet", "onet"):
        name = record[net]["file"]
        (tmp_path / name).write_bytes((out.parent / name).read_bytes())
    onet = tmp_path / record["onet"]["file"]
    onet.write_bytes(onet.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="onet.onnx: sha256 does not match"):
        mtcnnonnx.OnnxMTCNN.from_record(tmp_path, record)
    onet.unlink()
    with pytest.raises(ValueError, match="MTCNN's onet, named by the model, is missing"):
        mtcnnonnx.OnnxMTCNN.from_record(tmp_path, record, trust=True)


def test_area_resize_is_torchs_area_interpolation():
    import torch
    image = np.random.default_rng(0).uniform(0, 255, (3, 37, 53)).astype(np.float32)
    for size in ((12, 12), (24, 24), (20, 29), (37, 53), (48, 48)):
        want = torch.nn.functional.interpolate(torch.as_tensor(image)[None], size=size,
                                               mode="area")[0].numpy()
        np.testing.assert_allclose(mtcnnonnx.area_resize(image, *size), want, atol=1e-3)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 4, 4]], float)
    scores = np.array([0.8, 0.9, 0.7, 0.95])
    assert mtcnnonnx.nms(boxes, scores, 0.5).tolist() == [3, 1, 2]
    # overlap over the smaller box (+1 areas): the box that holds the best one goes too
    assert mtcnnonnx.nms(boxes, scores, 0.7, by_min=True).tolist() == [3, 1, 2]
    assert mtcnnonnx.nms(boxes, scores, 0.6, by_min=True).tolist() == [3, 2]
    assert mtcnnonnx.nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_faces_found_in_several_turns_merge_best_score_first():
    Face = faces.Face
    upright = Face(np.array([100.0, 100, 50, 50]), score=0.91)
    turned = Face(np.array([108.0, 96, 52, 52]), score=0.999)       # the same face, turned
    beside = Face(np.array([135.0, 96, 52, 52]), score=0.95)        # IoU 0.32, centres outside
    apart = Face(np.array([300.0, 100, 50, 50]), score=0.92)
    found = [upright, turned, beside, apart]
    kept = lambda how: [[id(g) for g in found].index(id(f))  # noqa: E731
                        for f in faces.merge_turns(found, how)]
    assert kept("nms") == [1, 3]
    # upright first: the weaker upright box stands for the face, and the overlap stays
    assert kept("centre") == [0, 2, 3]
