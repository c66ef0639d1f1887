import numpy as np
import pytest
import torch

from kfkd_kit import keypoints as kp


def test_feature_names_follow_kaggle_order():
    assert kp.N_TARGETS == 30
    assert kp.FEATURE_NAMES[:4] == ("left_eye_center_x", "left_eye_center_y",
                                    "right_eye_center_x", "right_eye_center_y")
    assert kp.FEATURE_NAMES[-2:] == ("mouth_center_bottom_lip_x", "mouth_center_bottom_lip_y")
    assert kp.columns_of(kp.COMMON_KEYPOINTS) == [0, 1, 2, 3, 20, 21, 28, 29]


def test_flip_pairs_swap_left_and_right_only():
    pairs = kp.flip_pairs()
    assert len(pairs) == 12
    for a, b in pairs:
        left, right = kp.FEATURE_NAMES[a], kp.FEATURE_NAMES[b]
        assert left.replace("left", "right") == right
    flipped = {i for pair in pairs for i in pair}
    stay = [kp.FEATURE_NAMES[i] for i in range(30) if i not in flipped]
    assert stay == ["nose_tip_x", "nose_tip_y", "mouth_center_top_lip_x",
                    "mouth_center_top_lip_y", "mouth_center_bottom_lip_x",
                    "mouth_center_bottom_lip_y"]


def test_flip_pairs_index_a_subset_of_columns():
    columns = kp.columns_of(["mouth_left_corner", "mouth_right_corner", "mouth_center_top_lip"])
    assert kp.flip_pairs(columns) == [(0, 2), (1, 3)]


def test_scaling_round_trip():
    y = np.array([[0.0, 48.0, 95.0, np.nan]])
    unit = kp.to_unit(y)
    assert np.allclose(unit[0, :3], [-1.0, 0.0, 47 / 48])
    assert np.allclose(kp.from_unit(unit), y, equal_nan=True)


def test_mirror_matches_the_mirrored_image():
    """A mark drawn at a left-eye position lands where the mirrored keypoint says."""
    image = np.zeros((96, 96), np.uint8)
    image[30, 70] = 255  # row (y) 30, column (x) 70: the subject's left eye
    y = np.full((1, 30), np.nan)
    origin = kp.DEFAULT_PIXEL_ORIGIN
    y[0, 0:2] = (70 + origin, 30 + origin)  # left_eye_center, continuous coordinates
    mirrored_image = kp.mirror_images(image.reshape(1, -1)).reshape(96, 96)
    mirrored = kp.mirror_targets(y)
    row, col = np.argwhere(mirrored_image == 255)[0]
    # now the mark is the subject's right eye
    assert (mirrored[0, 2], mirrored[0, 3]) == (col + origin, row + origin)
    assert kp.image_axis() == 48.0 and kp.image_axis(1.0) == 48.5 and kp.image_axis(0.0) == 47.5
    assert kp.frame() == (0.0, 96.0) and kp.frame(1.0) == (0.5, 96.5)
    assert np.isnan(mirrored[0, 0])


def test_mirror_in_unit_scale_agrees_with_pixels():
    rng = np.random.default_rng(1)
    y = rng.uniform(0, 95, (5, 30))
    via_unit = kp.from_unit(kp.mirror_targets(kp.to_unit(y), unit=True))
    assert np.allclose(via_unit, kp.mirror_targets(y))
    tensor = kp.mirror_targets(torch.tensor(y), unit=False).numpy()
    assert np.allclose(tensor, kp.mirror_targets(y))
    assert np.allclose(kp.mirror_targets(kp.mirror_targets(y)), y)
    for axis in (47.75, 48.5, 49.2):
        via_unit = kp.from_unit(kp.mirror_targets(kp.to_unit(y), unit=True, axis=axis))
        assert np.allclose(via_unit, kp.mirror_targets(y, axis=axis))
        assert np.allclose(kp.mirror_targets(y, axis=axis)[:, 20], 2 * axis - y[:, 20])  # nose x


def test_shift_images_moves_content_and_zero_fills_what_it_uncovers():
    X = np.arange(2 * kp.N_PIXELS, dtype=np.float32).reshape(2, kp.N_PIXELS) % 250 + 1
    images = X.reshape(2, 96, 96)
    moved = kp.shift_images(X, 3, -2)
    assert moved.shape == X.shape and moved.dtype == X.dtype
    out = moved.reshape(2, 96, 96)
    np.testing.assert_array_equal(out[:, 0:94, 3:96], images[:, 2:96, 0:93])  # (r, c) <- (r+2, c-3)
    assert (out[:, :, :3] == 0).all() and (out[:, 94:, :] == 0).all()
    square = kp.shift_images(images.astype(np.uint8), -5, 4)                   # (n, 96, 96) too
    np.testing.assert_array_equal(square[:, 4:, :91], images.astype(np.uint8)[:, :92, 5:])
    np.testing.assert_array_equal(kp.shift_images(X, 0, 0), X)
    assert not kp.shift_images(X, 96, 0).any()


def test_shift_grid_is_a_3x3_grid_centre_first_and_refuses_other_steps():
    assert kp.shift_grid(0) == [(0, 0)]
    grid = kp.shift_grid(2)
    assert grid[0] == (0, 0) and len(set(grid)) == 9
    assert {dx for dx, _ in grid} == {dy for _, dy in grid} == {-2, 0, 2}
    for bad in (-1, 1.5, 48, True, "two"):
        with pytest.raises(ValueError, match="whole number of pixels"):
            kp.shift_grid(bad)
