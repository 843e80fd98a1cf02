"""Fixtures shared by the whole suite: array backends with dtype-keyed tolerances."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.backends import CPU_BACKENDS, GPU_BACKENDS, Backend, backend_available

settings.register_profile(
    "default", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Pin torch to one thread: on a shared 2-core machine its thread pool makes the tiny
    products of these tests ~50x slower (1.3 ms instead of 20 us per 24x24 matmul)."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _params(backends: list[Backend], marks: tuple = ()) -> list:
    params = []
    for backend in backends:
        backend_marks = list(marks)
        if not backend_available(backend):
            backend_marks.append(pytest.mark.skip(reason=f"{backend.id} is not available here"))
        params.append(pytest.param(backend, id=backend.id, marks=backend_marks))
    return params


ALL_BACKENDS = _params(CPU_BACKENDS) + _params(
    [b for b in GPU_BACKENDS if b.library == "cupy"][:1], marks=(pytest.mark.gpu,)
)


@pytest.fixture(params=ALL_BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Every array backend: numpy, array_api_strict, torch (float64, float32), cupy (GPU only)."""
    return request.param


@pytest.fixture
def xp(backend: Backend):
    """The array namespace of the current backend."""
    return backend.xp
