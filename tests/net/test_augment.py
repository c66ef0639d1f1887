"""Training-batch augmentation: keypoints move exactly with the image (in each pixel
convention), out-of-frame keypoints become missing, zero ranges change nothing, seeds
repeat."""
import numpy as np
import pytest
import torch
from skorch.dataset import Dataset

from kfkd_kit import configs
from kfkd_kit.net.batches import ResidentBatches, jitter_intensity, random_affine
from kfkd_kit.keypoints import (DEFAULT_PIXEL_ORIGIN, FEATURE_INDEX, IMAGE_SIDE, affine_images,
                                affine_targets, columns_of, from_unit, to_unit)

LEFT_EYE = [FEATURE_INDEX["left_eye_center_x"], FEATURE_INDEX["left_eye_center_y"]]
NOSE = [FEATURE_INDEX["nose_tip_x"], FEATURE_INDEX["nose_tip_y"]]


def _dot_images(points, sigma=1.2, origin=DEFAULT_PIXEL_ORIGIN):
    """One image per (x, y) point (labels of pixel origin ``origin``): a Gaussian dot there."""
    grid = torch.arange(IMAGE_SIDE, dtype=torch.float64) + origin
    images = []
    for x, y in points:
        dot = torch.exp(-((grid[None, :] - x) ** 2 + (grid[:, None] - y) ** 2) / (2 * sigma ** 2))
        images.append(dot.reshape(-1))
    return torch.stack(images).float()


def _centroid(images, origin=DEFAULT_PIXEL_ORIGIN):
    """Intensity-weighted (x, y) centre of each flat image, in labels of pixel origin ``origin``."""
    grid = torch.arange(IMAGE_SIDE, dtype=torch.float64) + origin
    square = images.double().reshape(len(images), IMAGE_SIDE, IMAGE_SIDE)
    total = square.sum(dim=(1, 2))
    x = (square * grid[None, None, :]).sum(dim=(1, 2)) / total
    y = (square * grid[None, :, None]).sum(dim=(1, 2)) / total
    return torch.stack([x, y], dim=1)


def _targets_at(points):
    """Unit-scale targets with only the left eye centre labelled, at ``points``."""
    y = torch.full((len(points), 30), float("nan"))
    y[:, LEFT_EYE] = to_unit(torch.tensor(points, dtype=torch.float32))
    return y


@pytest.mark.parametrize("origin", [0.5, 1.0, 0.0])
def test_a_moved_dot_lands_where_its_moved_keypoint_says(origin):
    points = [(30.0, 40.0), (60.5, 35.25), (48.5, 48.5), (40.0, 62.0), (55.0, 55.0),
              (35.0, 30.0), (62.0, 60.0), (44.0, 38.0)]
    X, y = _dot_images(points, origin=origin), _targets_at(points)
    torch.manual_seed(3)
    moved_X, moved_y = random_affine(X, y, rotate=20.0, scale=0.15, shift=6.0, origin=origin)
    assert not torch.equal(moved_X, X)  # the draw really moved them
    dot_at = _centroid(moved_X, origin)
    keypoint_at = from_unit(moved_y[:, LEFT_EYE]).double()
    assert torch.isfinite(keypoint_at).all()
    assert (dot_at - keypoint_at).abs().max() < 0.05
    # turned about another centre than the images', the keypoints would miss their dots
    torch.manual_seed(3)
    _, wrong_y = random_affine(X, y, rotate=20.0, scale=0.15, shift=6.0, origin=origin + 0.5)
    assert (dot_at - from_unit(wrong_y[:, LEFT_EYE]).double()).abs().max() > 0.05
    # and they really went somewhere: most dots moved by more than a pixel
    assert ((keypoint_at - torch.tensor(points, dtype=torch.float64)).norm(dim=1) > 1).sum() >= 6


def test_a_pure_shift_moves_image_and_keypoint_by_whole_pixels():
    X = _dot_images([(40.0, 50.0)], origin=1.0)      # 1-based: the dot on pixel (49, 39)
    matrix, offset = torch.eye(2)[None], torch.tensor([[3.0, -2.0]])
    moved = affine_images(X, matrix, offset).reshape(IMAGE_SIDE, IMAGE_SIDE)
    original = X.reshape(IMAGE_SIDE, IMAGE_SIDE)
    # the dot's pixel (row 49, column 39) moved to (47, 42)
    torch.testing.assert_close(moved[47, 42], original[49, 39])
    assert original[49, 39] == 1.0
    target = affine_targets(_targets_at([(40.0, 50.0)]), matrix, offset, unit=True)
    torch.testing.assert_close(from_unit(target[0, LEFT_EYE]), torch.tensor([43.0, 48.0]))


def test_the_identity_map_leaves_images_and_targets_alone():
    X = torch.rand(4, IMAGE_SIDE * IMAGE_SIDE)
    y = to_unit(torch.rand(4, 30) * 90 + 3)
    matrix, offset = torch.eye(2).expand(4, 2, 2), torch.zeros(4, 2)
    torch.testing.assert_close(affine_images(X, matrix, offset), X, atol=1e-5, rtol=0)
    torch.testing.assert_close(affine_targets(y, matrix, offset, unit=True), y)


def test_a_keypoint_pushed_out_of_the_frame_becomes_missing_not_wrong():
    y = torch.full((1, 30), float("nan"))
    y[0, LEFT_EYE] = torch.tensor([92.0, 40.0])
    y[0, NOSE] = torch.tensor([48.0, 50.0])
    moved = affine_targets(y, torch.eye(2)[None], torch.tensor([[5.0, 0.0]]), origin=1.0)
    assert torch.isnan(moved[0, LEFT_EYE]).all()          # x = 97 is outside: both missing
    torch.testing.assert_close(moved[0, NOSE], torch.tensor([53.0, 50.0]))
    inside = affine_targets(y, torch.eye(2)[None], torch.tensor([[4.5, 0.0]]), origin=1.0)
    torch.testing.assert_close(inside[0, LEFT_EYE], torch.tensor([96.5, 40.0]))  # on the edge
    # continuous coordinates (origin 0.5): the frame ends at 96
    assert torch.isnan(affine_targets(y, torch.eye(2)[None], torch.tensor([[4.5, 0.0]]))[0, LEFT_EYE]).all()
    edge = affine_targets(y, torch.eye(2)[None], torch.tensor([[4.0, 0.0]]))
    torch.testing.assert_close(edge[0, LEFT_EYE], torch.tensor([96.0, 40.0]))


def test_affine_on_a_specialists_columns_matches_the_full_targets():
    columns = columns_of(["left_eye_center", "nose_tip", "mouth_left_corner"])
    y = to_unit(torch.rand(5, 30) * 60 + 18)
    angle = torch.linspace(-0.3, 0.3, 5)
    matrix = torch.stack([torch.stack([angle.cos(), -angle.sin()], 1),
                          torch.stack([angle.sin(), angle.cos()], 1)], 1) * 1.05
    offset = torch.randn(5, 2)
    full = affine_targets(y, matrix, offset, unit=True)
    part = affine_targets(y[:, columns], matrix, offset, columns=columns, unit=True)
    torch.testing.assert_close(part, full[:, columns])


def _batches(seed, **params):
    g = torch.Generator().manual_seed(0)
    X = torch.rand(40, IMAGE_SIDE * IMAGE_SIDE, generator=g)
    y = to_unit(torch.rand(40, 30, generator=g) * 80 + 8)
    y[::4, 4:] = float("nan")
    torch.manual_seed(seed)
    return list(ResidentBatches(Dataset(X, y), batch_size=16, shuffle=True, **params))


def _same(a, b):
    return all(torch.equal(xa, xb) and torch.equal(ya.nan_to_num(-9), yb.nan_to_num(-9))
               for (xa, ya), (xb, yb) in zip(a, b))


def test_zero_ranges_give_exactly_the_batches_of_no_augmentation():
    zero = dict(rotate=0.0, scale=0.0, shift=0.0, brightness=0.0, contrast=0.0)
    assert _same(_batches(1, flip=True, **zero), _batches(1, flip=True))
    assert _same(_batches(1, **zero), _batches(1))


def test_the_same_seed_gives_the_same_augmented_batches():
    params = dict(flip=True, rotate=15.0, scale=0.1, shift=4.0, brightness=0.1, contrast=0.2)
    assert _same(_batches(7, **params), _batches(7, **params))
    assert not _same(_batches(7, **params), _batches(8, **params))
    assert not _same(_batches(7, **params), _batches(7, flip=True))


def test_intensity_jitter_stays_in_range_and_shifts_brightness():
    X = torch.full((3, IMAGE_SIDE * IMAGE_SIDE), 0.5)
    X[:, :100] = 0.3
    torch.manual_seed(0)
    out = jitter_intensity(X.clone(), brightness=0.2, contrast=0.0)
    shift = (out - X)[:, 0]
    torch.testing.assert_close(out - X, shift[:, None].expand_as(X))  # one offset per image
    assert shift.abs().max() <= 0.2 and shift.abs().min() > 0
    strong = jitter_intensity(torch.rand(8, IMAGE_SIDE * IMAGE_SIDE), brightness=0.5, contrast=0.9)
    assert strong.min() >= 0 and strong.max() <= 1


def test_net8_augments_training_batches_only(tiny_xy):
    X, y = tiny_xy
    pipe = configs.build("net8", epochs=1, verbose=0, device="cpu")
    pipe.set_params(net__module__width=4, net__batch_size=32)
    pipe.fit(X, y)
    net = pipe.named_steps["net"]
    train_it = net.get_iterator(net.get_dataset(X[:4].astype(np.float32)), training=True)
    valid_it = net.get_iterator(net.get_dataset(X[:4].astype(np.float32)), training=False)
    assert train_it.moves and train_it.jitters and train_it.flip
    assert not (valid_it.moves or valid_it.jitters or valid_it.flip)
    np.testing.assert_array_equal(pipe.predict(X), pipe.predict(X))
