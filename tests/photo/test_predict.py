"""`kfkd predict` on real photos and `kfkd export` to ONNX, through the command line.

The photo is NASA's astronaut portrait (public domain, tests/fixtures/README.md). The synthetic
faces would not fool a detector trained on photos, and no net that predicts real faces well
can be trained in a test; so the model for the photo tests is a ridge regression from pixels
to keypoints, fitted in seconds on crops of this one face (tilted, scaled and shifted around
hand-placed keypoints). The tests check consistency: the keypoints found
in a rescaled, tilted, EXIF-rotated or doubled copy of the photo must match, once mapped,
those found in the plain photo.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from kfkd_kit.photo import framing
from kfkd_kit.cli import main
from kfkd_kit.keypoints import FEATURE_NAMES, IMAGE_SIDE
from kfkd_kit.utils.modelfile import save_model

from astronaut import ASTRONAUT, HEAD, ROOT, head, save_ridge_model, similarity  # tests/photo, on sys.path


def place(canvas_size, image, T, fill=(90, 110, 130)):
    """``image`` (RGB) warped by ``T`` (its coordinates -> the canvas's) onto a plain canvas."""
    import cv2
    width, height = canvas_size
    M = framing.pixel_matrix(T)
    out = np.empty((height, width, 3), np.uint8)
    for c in range(3):
        out[..., c] = cv2.warpAffine(image[..., c], M, (width, height), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=fill[c])
    return out


@pytest.fixture(scope="module")
def photo_model(tmp_path_factory):
    """The ridge regression on crops of the astronaut's face (astronaut.py), saved with its
    JSON (sha256) and its mean layout, like a trained model."""
    return save_ridge_model(tmp_path_factory.mktemp("model") / "ridge.joblib")


def predict_csv(model, inputs, out, *extra, expect=0, capsys=None):
    code = main(["predict", "--model", str(model), "--out", str(out), *map(str, inputs), *map(str, extra)])
    assert code == expect
    return pd.read_csv(out) if out.exists() else None


def keypoints_of(row):
    return framing.points(np.array([row[f] for f in FEATURE_NAMES], dtype=float))


def rmse96(found, truth, scale):
    """RMSE between two (15, 2) point sets, at the 96-px face scale."""
    return float(np.sqrt(np.mean(((found - truth) / scale) ** 2)))


@pytest.fixture(scope="module")
def plain(photo_model, tmp_path_factory):
    """The keypoints found in the plain head photo."""
    folder = tmp_path_factory.mktemp("plain")
    image, truth = head()
    Image.fromarray(image).save(folder / "head.png")
    table = predict_csv(photo_model, [folder / "head.png"], folder / "k.csv")
    assert len(table) == 1
    found = keypoints_of(table.iloc[0])
    # the crop frames the face: the ridge regression, fitted on its own face, finds it again
    assert rmse96(found, framing.points(truth), 1.0) < 3.0
    return found


# --------------------------------------------------------------------------- geometry

def test_similarity_fit_recovers_a_transform_and_crops_keep_kaggle_coordinates():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (15, 2))
    T = similarity(1.7, 23.0, (5.0, -8.0), about=(10, 20))
    np.testing.assert_allclose(framing.fit_similarity(src, framing.apply(T, src)), T, atol=1e-9)
    np.testing.assert_allclose(framing.compose(framing.invert(T), T), similarity(), atol=1e-12)
    # a bright pixel at 0-based (row 40, column 30) sits at (31, 41) in Kaggle's coordinates;
    # the identity crop puts it at the same place, a shift by (5, 7) at (36, 48)
    image = np.zeros((120, 150), np.float32)
    image[40, 30] = 255
    crop = framing.warp_to_crop(image, similarity())
    assert np.unravel_index(crop.argmax(), crop.shape) == (40, 30)
    crop = framing.warp_to_crop(image, similarity(shift=(5, 7)))
    assert np.unravel_index(crop.argmax(), crop.shape) == (47, 35)
    # a patch of a large photo crops as the photo does
    big = np.random.default_rng(2).uniform(0, 255, (600, 800)).astype(np.float32)
    import cv2
    big = cv2.GaussianBlur(big, (0, 0), 6)
    T = similarity(0.4, 10, (-100, -60), about=(300, 200))
    patch = framing.FacePatch(big, T)
    assert patch.image.shape[0] < big.shape[0]
    np.testing.assert_allclose(patch.crop(T), framing.warp_to_crop(big, T), atol=2.0)


# --------------------------------------------------------------------------- reading

def test_reads_every_format_as_the_same_grey_photo(tmp_path):
    from kfkd_kit.photo.photos import read_photo
    image = np.asarray(Image.open(ASTRONAUT).convert("RGB").crop(HEAD))
    reference = read_photo(ASTRONAUT).grey[HEAD[1]:HEAD[3], HEAD[0]:HEAD[2]]
    rgb = Image.fromarray(image)
    grey8 = rgb.convert("L")
    files = {
        "png": lambda p: rgb.save(p),
        "bmp": lambda p: rgb.save(p),
        "webp": lambda p: rgb.save(p, lossless=True),
        "tif": lambda p: rgb.save(p),
        "grey.png": lambda p: grey8.save(p),
        "alpha.png": lambda p: rgb.convert("RGBA").save(p),
        "palette.png": lambda p: rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(p),
        "16bit.png": lambda p: Image.fromarray(
            (np.asarray(grey8, np.uint16) * 257).astype(np.uint16)).save(p),
        "q95.jpg": lambda p: rgb.save(p, quality=95),
    }
    for suffix, write in files.items():
        path = tmp_path / f"head.{suffix}"
        write(path)
        photo = read_photo(path)
        assert photo.grey.shape == (256, 256) and photo.rgb.shape == (256, 256, 3), suffix
        tolerance = {"palette.png": 12.0, "q95.jpg": 4.0}.get(suffix, 1.0)
        assert np.abs(photo.grey - reference).mean() < tolerance, suffix
    # transparent parts read as white
    clear = np.zeros((8, 8, 4), np.uint8)
    Image.fromarray(clear, "RGBA").save(tmp_path / "clear.png")
    assert read_photo(tmp_path / "clear.png").grey.min() == 255


def test_an_upload_decodes_in_memory_as_its_file_reads():
    from kfkd_kit.photo.photos import PhotoError, PhotoTooLarge, decode_photo, read_photo
    data = ASTRONAUT.read_bytes()
    photo, read = decode_photo(data, "upload.jpg"), read_photo(ASTRONAUT)
    assert photo.path == "upload.jpg" and photo.size == read.size == (512, 512)
    np.testing.assert_array_equal(photo.grey, read.grey)
    np.testing.assert_array_equal(photo.rgb, read.rgb)
    with pytest.raises(PhotoTooLarge, match=r"^upload\.jpg: 512x512 pixels, more than the 262,143 allowed$"):
        decode_photo(data, "upload.jpg", max_pixels=512 * 512 - 1)
    assert decode_photo(data, "upload.jpg", max_pixels=512 * 512).size == (512, 512)
    with pytest.raises(PhotoError, match=r"^empty\.jpg: an empty file$"):
        decode_photo(b"", "empty.jpg")
    with pytest.raises(PhotoError, match=r"^cut\.jpg: cannot read the image \(truncated\?\)"):
        decode_photo(data[:len(data) // 3], "cut.jpg")


@pytest.mark.parametrize("orientation, turn", [(3, Image.Transpose.ROTATE_180),
                                               (6, Image.Transpose.ROTATE_90),
                                               (8, Image.Transpose.ROTATE_270)])
def test_exif_orientation_is_applied(tmp_path, orientation, turn):
    from kfkd_kit.photo.photos import read_photo
    image = Image.open(ASTRONAUT).convert("RGB").crop(HEAD)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = image.transpose(turn)       # what a phone stores; the EXIF tag turns it back
    stored.save(tmp_path / "phone.png", exif=exif)
    np.testing.assert_array_equal(read_photo(tmp_path / "phone.png").rgb, np.asarray(image))


# --------------------------------------------------------------------------- end to end

@pytest.mark.slow
def test_scaled_and_tilted_copies_give_the_same_keypoints(photo_model, plain, tmp_path):
    image, _ = head()
    cases = [(0.6, 0.0), (1.6, 0.0), (1.0, 15.0), (1.3, -20.0)]
    for number, (scale, degrees) in enumerate(cases):
        size = (int(256 * scale * 1.8), int(256 * scale * 1.6))
        T = similarity(scale, degrees, shift=(size[0] * 0.4 - 128, size[1] * 0.45 - 128),
                       about=(128.5, 128.5))
        Image.fromarray(place(size, image, T)).save(tmp_path / f"copy{number}.jpg", quality=95)
    table = predict_csv(photo_model, [tmp_path], tmp_path / "k.csv")
    assert table["image"].tolist() == [str(tmp_path / f"copy{n}.jpg") for n in range(len(cases))]
    for (_, row), (scale, degrees), number in zip(table.iterrows(), cases, range(len(cases))):
        T = similarity(scale, degrees, shift=(int(256 * scale * 1.8) * 0.4 - 128,
                                              int(256 * scale * 1.6) * 0.45 - 128),
                       about=(128.5, 128.5))
        error = rmse96(keypoints_of(row), framing.apply(T, plain), scale)
        assert error < 1.5, (scale, degrees, error)


@pytest.mark.slow
def test_exif_rotated_copies_give_the_same_displayed_keypoints(photo_model, plain, tmp_path):
    image = Image.fromarray(head()[0])
    image.save(tmp_path / "upright.jpg", quality=95)
    for orientation, turn in ((6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270),
                              (3, Image.Transpose.ROTATE_180)):
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.transpose(turn).save(tmp_path / f"phone{orientation}.jpg", quality=95, exif=exif)
    table = predict_csv(photo_model, [tmp_path], tmp_path / "k.csv")
    assert len(table) == 4
    upright = keypoints_of(table[table["image"].str.endswith("upright.jpg")].iloc[0])
    for _, row in table.iterrows():
        assert rmse96(keypoints_of(row), upright, 1.0) < 0.5, row["image"]


@pytest.mark.slow
def test_two_faces_give_two_rows_left_to_right(photo_model, plain, tmp_path):
    image, _ = head()
    left = similarity(0.8, 5.0, (20, 60), about=(0, 0))
    right = similarity(1.1, -8.0, (330, 40), about=(0, 0))
    canvas = place((640, 400), image, right)
    mask = place((640, 400), np.full_like(image, 255), left, fill=(0, 0, 0))
    canvas = np.where(mask > 128, place((640, 400), image, left), canvas)
    Image.fromarray(canvas).save(tmp_path / "two.png")
    table = predict_csv(photo_model, [tmp_path / "two.png"], tmp_path / "k.csv",
                        "--annotated", tmp_path / "drawn")
    assert table["face"].tolist() == [0, 1]
    assert table["x"].iloc[0] < table["x"].iloc[1]
    for (_, row), T, scale in zip(table.iterrows(), (left, right), (0.8, 1.1)):
        assert rmse96(keypoints_of(row), framing.apply(T, plain), scale) < 1.5
    assert list(table.columns) == ["image", "face", "x", "y", "w", "h", "score", *FEATURE_NAMES]
    assert table["score"].between(0.9, 1.0).all()        # MTCNN's probabilities
    drawn = Image.open(tmp_path / "drawn" / "two.jpg")
    assert drawn.size == (640, 400)
    # --min-score above both: no row, and the run says why
    table = predict_csv(photo_model, [tmp_path / "two.png"], tmp_path / "none.csv",
                        "--min-score", "1.01")
    assert len(table) == 0 and "score" in table.columns


@pytest.mark.slow
def test_bad_files_are_one_line_each_and_skipped(photo_model, plain, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(head()[0]).save(folder / "good.jpg", quality=90)
    good = (folder / "good.jpg").read_bytes()
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("not an image\n")
    (folder / "truncated.jpg").write_bytes(good[:len(good) // 3])
    (folder / "readme.txt").write_text("ignored: not an image name\n")
    capsys.readouterr()
    table = predict_csv(photo_model, [folder], tmp_path / "k.csv")
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 3, err
    for name, why in (("empty.jpg", "empty"), ("notes.png", "not an image"),
                      ("truncated.jpg", "truncated")):
        assert sum(name in line and why in line for line in lines) == 1, (name, err)
    assert "Traceback" not in err
    assert out.splitlines()[-2] == ("1 photo read, 1 face found, 0 photos with no face, "
                                    "3 files could not be read")
    assert table["image"].tolist() == [str(folder / "good.jpg")]
    # nothing readable at all: exit 2, one line per file and one for the run, no CSV
    code = main(["predict", "--model", str(photo_model), "--out", str(tmp_path / "none.csv"),
                 str(folder / "empty.jpg"), str(folder / "notes.png")])
    out, err = capsys.readouterr()
    assert code == 2 and not (tmp_path / "none.csv").exists()
    assert len(err.strip().splitlines()) == 3 and "no image could be read" in err


@pytest.mark.slow
def test_no_face_and_small_faces_are_counted(photo_model, plain, tmp_path, capsys):
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(tmp_path / "wall.png")
    Image.fromarray(head()[0]).save(tmp_path / "head.png")
    capsys.readouterr()
    table = predict_csv(photo_model, [tmp_path / "wall.png", tmp_path / "head.png"],
                        tmp_path / "k.csv", "--min-size", "150")
    out = capsys.readouterr().out.splitlines()
    assert len(table) == 0 and list(table.columns)[:6] == ["image", "face", "x", "y", "w", "h"]
    assert out[-2] == ("2 photos read, 0 faces found, 2 photos with no face, 0 files could "
                       "not be read (1 face under 150 px skipped)")


@pytest.mark.slow
def test_a_model_without_a_layout_is_one_line(tmp_path, capsys):
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline

    from kfkd_kit.net.pipeline import PixelScaler
    rng = np.random.default_rng(0)
    model = Pipeline([("pixels", PixelScaler()), ("net", Ridge())]).fit(
        rng.uniform(0, 255, (5, 9216)), rng.uniform(20, 70, (5, 30)))
    save_model(model, tmp_path / "old.joblib", {})
    Image.fromarray(head()[0]).save(tmp_path / "head.png")
    code = main(["predict", "--model", str(tmp_path / "old.joblib"), "--out",
                 str(tmp_path / "k.csv"), str(tmp_path / "head.png")])
    err = capsys.readouterr().err
    assert code == 2 and "no mean keypoint layout" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "k.csv").exists()


# --------------------------------------------------------------------------- ONNX

@pytest.fixture(scope="module")
def tiny_net(tmp_path_factory):
    """net1 fitted for a few epochs on synthetic faces, fp32, saved like `kfkd train` does."""
    from kfkd_kit import configs
    from kfkd_kit.data.synthetic import make_faces
    X, y = make_faces(160, seed=0)
    model = configs.build("net1", epochs=3, device="cpu", precision="fp32", verbose=0)
    model.fit(X, y)
    framing.attach_layout(model, y)
    path = tmp_path_factory.mktemp("net") / "tiny.joblib"
    save_model(model, path, {"net": "net1"})
    return path


@pytest.mark.slow
def test_onnx_round_trip(tiny_net, tmp_path, capsys):
    import onnx

    from kfkd_kit.photo.onnxgraph import check_batch
    from kfkd_kit.photo.onnxmodel import OnnxKeypoints
    from kfkd_kit.utils.modelfile import load_model, sha256_of
    assert main(["export", "--model", str(tiny_net)]) == 0
    out = capsys.readouterr().out.splitlines()
    onnx_path = tiny_net.with_suffix(".onnx")
    assert out[-1] == str(onnx_path) and "agree" in out[0] and "MTCNN" in out[0]
    mtcnn_files = sorted(p.name for p in onnx_path.parent.glob("tiny.mtcnn-*.onnx"))
    assert mtcnn_files == [f"tiny.mtcnn-{n}.onnx" for n in ("onet", "pnet", "rnet")]
    record = json.loads(tiny_net.with_suffix(".json").read_text())
    assert record["onnx_file"]["sha256"] == sha256_of(onnx_path)
    assert record["model_file"]["file"] == "tiny.joblib"       # the model's own record stays
    onnx.checker.check_model(onnx.load(onnx_path))
    runtime = OnnxKeypoints(onnx_path)
    model = load_model(tiny_net)
    crops = check_batch(20, seed=5)
    np.testing.assert_allclose(runtime(crops), model.predict(crops.reshape(20, -1)), atol=1e-3)
    np.testing.assert_allclose(runtime.layout, framing.layout_of(model))
    from kfkd_kit.meta.tta import flip_tta
    np.testing.assert_allclose(OnnxKeypoints(onnx_path, tta=True)(crops),
                               flip_tta(model).predict(crops.reshape(20, -1)), atol=1e-3)
    np.testing.assert_allclose(OnnxKeypoints(onnx_path, tta=True, tta_shift=2)(crops),
                               flip_tta(model, shift=2).predict(crops.reshape(20, -1)), atol=1e-3)

    # predict through onnxruntime (MTCNN's exported nets find the face), in a fresh
    # interpreter that never imports torch
    Image.fromarray(head()[0]).save(tmp_path / "head.png")
    script = ("import sys; from kfkd_kit.cli import main; "
              f"code = main(['predict', '--model', {str(onnx_path)!r}, '--tta-shift', '2', '--out', "
              f"{str(tmp_path / 'onnx.csv')!r}, {str(tmp_path / 'head.png')!r}]); "
              "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(code)")
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=900)
    assert run.returncode == 0, run.stderr
    assert main(["predict", "--model", str(tiny_net), "--tta-shift", "2", "--out",
                 str(tmp_path / "torch.csv"), str(tmp_path / "head.png")]) == 0
    via_onnx, via_torch = pd.read_csv(tmp_path / "onnx.csv"), pd.read_csv(tmp_path / "torch.csv")
    assert len(via_onnx) == len(via_torch) == 1
    np.testing.assert_allclose(via_onnx[list(FEATURE_NAMES)], via_torch[list(FEATURE_NAMES)],
                               atol=0.01)
    np.testing.assert_allclose(via_onnx[["x", "y", "w", "h", "score"]],
                               via_torch[["x", "y", "w", "h", "score"]], atol=0.02)

    # a changed file is refused; so is an export that does not match torch
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")
    capsys.readouterr()
    assert main(["predict", "--model", str(onnx_path), "--out", str(tmp_path / "x.csv"),
                 str(tmp_path / "head.png")]) == 2
    assert "does not match" in capsys.readouterr().err


@pytest.mark.slow
def test_export_refuses_to_write_on_a_mismatch(tiny_net, tmp_path, monkeypatch, capsys):
    from kfkd_kit.photo import onnxgraph
    monkeypatch.setattr(onnxgraph, "TOLERANCE", -1.0)
    out = tmp_path / "never.onnx"
    assert main(["export", "--model", str(tiny_net), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "nothing written" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_seed_ensemble_exports_as_one_graph_of_its_mean(tmp_path, capsys):
    from kfkd_kit import configs
    from kfkd_kit.photo.onnxgraph import check_batch
    from kfkd_kit.meta.ensemble import SeedEnsemble
    from kfkd_kit.utils.modelfile import load_model
    from kfkd_kit.photo.onnxmodel import OnnxKeypoints
    from kfkd_kit.data.synthetic import make_faces
    X, y = make_faces(120, seed=1)
    model = SeedEnsemble(configs.build("net1", epochs=2, device="cpu", precision="fp32",
                                       verbose=0), seeds=2, n_jobs=1).fit(X, y)
    framing.attach_layout(model, y)
    path = tmp_path / "pair.joblib"
    save_model(model, path, {"net": "net1"})
    assert main(["export", "--model", str(path)]) == 0
    capsys.readouterr()
    crops = check_batch(16, seed=3)
    model = load_model(path)
    each = model.predict_each(crops.reshape(16, -1))
    assert np.abs(each[0] - each[1]).max() > 0.01       # two different nets, not one twice
    runtime = OnnxKeypoints(path.with_suffix(".onnx"))
    np.testing.assert_allclose(runtime(crops), model.predict(crops.reshape(16, -1)), atol=1e-3)
    assert json.loads(path.with_suffix(".json").read_text())["onnx"]["nets_averaged"] == 2


def test_the_mean_layout_travels_with_joblib_and_skops_models(tiny_net, tmp_path):
    from kfkd_kit.utils.modelfile import load_model
    model = load_model(tiny_net)
    layout = framing.layout_of(model)
    assert layout.shape == (30,) and np.isfinite(layout).all()
    save_model(model, tmp_path / "tiny.skops", {})
    np.testing.assert_array_equal(framing.layout_of(load_model(tmp_path / "tiny.skops")), layout)
    from kfkd_kit.meta.tta import flip_tta
    np.testing.assert_array_equal(framing.layout_of(flip_tta(model)), layout)
