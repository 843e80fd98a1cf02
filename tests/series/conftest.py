"""Pin torch to one thread: on a shared 2-core machine, torch's thread pool makes the tiny
products of these tests ~50x slower (1.3 ms instead of 20 us per 24x24 matmul)."""

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
