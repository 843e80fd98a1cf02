"""The GPU set: the ``backend`` fixture here runs over CuPy and torch CUDA only."""

from __future__ import annotations

import pytest

from tests.backends import GPU_BACKENDS, Backend, backend_available


@pytest.fixture(
    params=[
        pytest.param(
            b,
            id=b.id,
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(not backend_available(b), reason=f"{b.id} needs a CUDA GPU"),
            ],
        )
        for b in GPU_BACKENDS
    ]
)
def backend(request: pytest.FixtureRequest) -> Backend:
    """CuPy and torch CUDA, float64 and float32; skipped on machines without a GPU."""
    return request.param
