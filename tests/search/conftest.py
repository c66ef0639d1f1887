import pytest
import torch


@pytest.fixture
def one_thread():
    """Dask workers run torch on one thread; so does the in-process run compared with them."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
