import os

import numpy as np
import pytest
import torch

# Two cores on CI: keep torch from oversubscribing them.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def tiny_xy():
    """60 random 'faces' with pixel targets, a third of the rows with only 8 labels."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (60, 9216), dtype=np.uint8)
    y = rng.uniform(20, 76, (60, 30)).astype(np.float32)
    y[::3, 4:20] = np.nan
    return X, y
