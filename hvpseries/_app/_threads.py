"""A limit on the CPU threads of torch and the BLAS libraries, for the train and demo commands."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["limit_threads"]


@contextlib.contextmanager
def limit_threads(count: int | None) -> Iterator[None]:
    """Limit torch's and the BLAS libraries' CPU threads to ``count`` (None: leave them).

    BLAS threads are limited through threadpoolctl when it is installed (scikit-learn brings
    it); on a busy machine an unlimited OpenBLAS can make a small ``eigh`` 20 times slower.
    """
    if count is None:
        yield
        return
    with contextlib.ExitStack() as stack:
        try:
            import torch
        except ImportError:
            pass
        else:
            previous = torch.get_num_threads()
            torch.set_num_threads(count)
            stack.callback(torch.set_num_threads, previous)
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            pass
        else:
            stack.enter_context(threadpool_limits(limits=count))
        yield
