"""Operators on row-sharded vectors: every process holds a block of rows of each vector.

PyTorch is imported when an operator is built, not when hvpseries is imported, so the core
works without it.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

from .._core._array_api import array_namespace, device, dtype_name
from .._core._vector_space import VectorSpace
from ._base import LinearOperator

__all__ = ["DistributedOperator"]

# Codes of the dtypes compared across ranks at construction (-1: anything else).
_DTYPE_NAMES = ("float32", "float64", "complex64", "complex128")
# Sentinel sent by a rank whose local_size is not an integer.
_NOT_AN_INTEGER = -2


class _RowShardedSpace(VectorSpace):
    """Inner products of row-sharded vectors: local partial sums, then one all-reduce."""

    def __init__(self, xp: Any, group: Any, rank: int, local_sizes: tuple[int, ...]) -> None:
        super().__init__(xp)
        self.group = group
        self.rank = rank
        self.local_sizes = local_sizes
        self.local_size = local_sizes[rank]
        self.offset = sum(local_sizes[:rank])
        self.global_size = sum(local_sizes)
        self.n_all_reduce = 0

    def _all_reduce(self, partial: Any) -> Any:
        import torch.distributed as dist

        partial = partial.contiguous()
        dist.all_reduce(partial, op=dist.ReduceOp.SUM, group=self.group)
        self.n_all_reduce += 1
        return partial

    def inner(self, x: Any, y: Any) -> Any:
        """Return the global column-wise inner products (one all-reduce)."""
        return self._all_reduce(super().inner(x, y))

    def norm(self, x: Any) -> Any:
        """Return the global norm of a vector or of each column (one all-reduce)."""
        xp = self._xp
        squares = super().inner(x, x)
        if xp.isdtype(squares.dtype, "complex floating"):
            squares = xp.real(squares)
        return xp.sqrt(self._all_reduce(squares))

    def gram(self, X: Any, Y: Any) -> Any:
        """Return the global inner products ``X^H Y`` (one all-reduce)."""
        return self._all_reduce(super().gram(X, Y))

    def all_finite(self, x: Any) -> bool:
        """Return whether every rank's rows are finite (the same answer on all ranks)."""
        xp = self._xp
        # The number of ranks holding a non-finite entry, summed: one all-reduce.
        flag = xp.asarray(
            [0.0 if super().all_finite(x) else 1.0], dtype=xp.float64, device=device(x)
        )
        return float(self._all_reduce(flag)[0]) == 0.0

    def global_length(self, length: int) -> int:
        """Return the global length of vectors with ``length`` local rows (checked)."""
        if length != self.local_size:
            message = (
                f"rank {self.rank} holds {self.local_size} rows of the sharded vectors, not "
                f"{length}"
            )
            raise ValueError(message)
        return self.global_size

    def shard(self, x: Any) -> Any:
        """Return this rank's rows of a global vector or block."""
        return x[self.offset : self.offset + self.local_size, ...]

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and other.group is self.group  # type: ignore[attr-defined]
            and other.local_sizes == self.local_sizes  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        return hash((type(self), id(self.group), self.local_sizes))

    def __repr__(self) -> str:
        return f"RowShardedSpace(rank={self.rank}, local_sizes={list(self.local_sizes)})"


class DistributedOperator(LinearOperator):
    r"""A square operator whose vectors are split by rows over a ``torch.distributed`` group.

    Rank ``r`` of the group holds rows ``offset_r, ..., offset_r + local_size_r - 1`` of every
    vector (as a PyTorch tensor of shape ``(local_size_r,)`` or ``(local_size_r, k)``) and
    computes the same rows of ``A x``. Its :attr:`vector_space` adds up the local parts of
    every inner product and norm with one ``all_reduce``, so CG, MINRES, Lanczos ``f(A) b``,
    :func:`hvpseries.abs_inv` and the series run unchanged when every rank calls them with
    its shard of ``b``, and every rank takes the same decisions.

    Parameters
    ----------
    matvec : callable
        With ``gather=False`` (default): ``matvec(x_local)`` returns the local rows of ``A x``
        from the local rows of ``x`` (both of shape ``(local_size,)``), doing whatever halo
        exchange it needs itself; every rank calls it at the same time. With ``gather=True``:
        ``matvec(x_full)`` receives the whole vector (shape ``(global_size,)``, all-gathered
        for it) and returns the local rows of ``A x``.
    local_size : int
        The number of rows held by this rank (may differ between ranks).
    global_size : int, optional
        The total number of rows; checked against the sum of the local sizes.
    group : ProcessGroup, optional
        The process group (the default group if omitted); it must be initialised.
    dtype : torch.dtype, default torch.float64
        The dtype of the vectors.
    device : str or torch.device, default "cpu"
        The device of this rank's vectors.
    matmat : callable, optional
        Like ``matvec`` for a block of ``k`` columns (local ``(local_size, k)``, or the
        gathered ``(global_size, k)`` with ``gather=True``); by default the columns are applied
        one by one.
    gather : bool, default False
        Whether ``matvec`` needs the whole vector (see above; costs one ``all_gather`` of the
        vector per product).
    symmetric, psd : bool or None
        Structure tags, trusted as given (the solvers for symmetric operators need
        ``symmetric`` to be ``True`` or ``None``).

    Raises
    ------
    ValueError
        On every rank, when the ranks disagree: a negative or non-integer ``local_size`` on
        some rank, local sizes that do not add up to ``global_size``, different
        ``global_size`` or ``dtype`` on different ranks. The message lists what every rank
        gave.
    RuntimeError
        If ``torch.distributed`` is not initialised.
    TypeError
        If ``matvec`` or ``matmat`` is not callable (raised locally, before any collective).

    Notes
    -----
    Shapes: :attr:`shape` is the *local* shape ``(local_size, local_size)`` seen by the arrays,
    so the solvers' checks (``b.shape[0] == A.shape[1]``) hold for the shards;
    :attr:`global_shape` is ``(global_size, global_size)`` and is what size-dependent defaults
    use (``maxiter = 10 n`` in CG, the rounding level of partial reorthogonalisation), so that
    they agree on every rank. The solvers return the local rows of the solution.

    Communication: every inner product or norm of the solvers is one ``all_reduce`` of a few
    numbers (one per column of a block); every rank receives the same bits, so convergence
    tests agree across ranks. CG costs two per iteration (``p^T A p`` and ``||r||``), plain
    Lanczos two per step (``alpha``, ``beta``) plus, with reorthogonalisation, one per stored
    block of 64 vectors and one norm per pass, and the series one per term. The count is kept
    in :attr:`n_all_reduce`.

    Operators built from this one by the operator algebra (``A.shift(s)``, ``2 * A``,
    ``A @ A``, :class:`CountingOperator`) keep its vector space; adding it to an operator on
    local vectors (for example an :class:`IdentityOperator`) raises ``ValueError``: use
    ``A.shift(s)`` for ``A + s I``.

    If one rank raises (or its matvec fails) the others wait in their next collective until
    the process group's timeout (``init_process_group(timeout=...)``).

    Examples
    --------
    A one-rank group, so that the example runs in one process (under ``torchrun`` every rank
    passes its own rows):

    >>> import datetime, os, socket
    >>> import torch
    >>> import torch.distributed as dist
    >>> import hvpseries as hs
    >>> with socket.socket() as probe:
    ...     probe.bind(("127.0.0.1", 0))
    ...     port = probe.getsockname()[1]
    >>> dist.init_process_group(
    ...     "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1,
    ...     timeout=datetime.timedelta(seconds=30))
    >>> d = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    >>> A = hs.DistributedOperator(lambda x: d * x, 3, global_size=3, symmetric=True)
    >>> A.shape, A.global_shape
    ((3, 3), (3, 3))
    >>> hs.krylov.cg(A, torch.ones(3, dtype=torch.float64), rtol=1e-12).x
    tensor([1.0000, 0.5000, 0.2500], dtype=torch.float64)
    >>> A.n_all_reduce > 0
    True
    >>> dist.destroy_process_group()
    """

    def __init__(
        self,
        matvec: Callable[[Any], Any],
        local_size: int,
        *,
        global_size: int | None = None,
        group: Any = None,
        dtype: Any = None,
        device: Any = "cpu",
        matmat: Callable[[Any], Any] | None = None,
        gather: bool = False,
        symmetric: bool | None = None,
        psd: bool | None = None,
    ) -> None:
        import torch
        import torch.distributed as dist

        if not callable(matvec):
            message = f"matvec must be callable, got {type(matvec).__name__}"
            raise TypeError(message)
        if matmat is not None and not callable(matmat):
            message = f"matmat must be callable or None, got {type(matmat).__name__}"
            raise TypeError(message)
        if not (dist.is_available() and dist.is_initialized()):
            message = (
                "DistributedOperator needs an initialised torch.distributed process group; "
                "call torch.distributed.init_process_group first (torchrun sets up its "
                "environment)"
            )
            raise RuntimeError(message)
        if dtype is None:
            dtype = torch.float64
        group = dist.group.WORLD if group is None else group
        rank = dist.get_rank(group)
        device = torch.device(device)
        # On the vectors' device: NCCL refuses CPU tensors.
        local_sizes = _agreed_sizes(local_size, global_size, dtype, group, device)
        xp = array_namespace(torch.empty(0))
        space = _RowShardedSpace(xp, group, rank, local_sizes)
        n = local_sizes[rank]
        super().__init__(
            (n, n),
            dtype,
            xp=xp,
            device=device,
            symmetric=symmetric,
            psd=psd,
            vector_space=space,
        )
        self._user_matvec = matvec
        self._user_matmat = matmat
        self._gather = bool(gather)
        self._space = space

    @property
    def rank(self) -> int:
        """The rank of this process in the group."""
        return self._space.rank

    @property
    def local_sizes(self) -> tuple[int, ...]:
        """The number of rows held by each rank, in rank order."""
        return self._space.local_sizes

    @property
    def offset(self) -> int:
        """The index of this rank's first row in the whole vector."""
        return self._space.offset

    @property
    def n_all_reduce(self) -> int:
        """How many all-reduces the solvers' inner products and norms have done so far."""
        return self._space.n_all_reduce

    def shard(self, x: Any) -> Any:
        """Return this rank's rows of a whole vector or block ``x`` (no communication)."""
        return self._space.shard(x)

    def gather(self, x: Any) -> Any:
        """Return the whole vector (or block) from every rank's rows ``x``: one ``all_gather``.

        Every rank of the group must call it (it is a collective).
        """
        import torch
        import torch.distributed as dist

        space = self._space
        longest = max(space.local_sizes)
        padded = torch.zeros((longest, *x.shape[1:]), dtype=x.dtype, device=x.device)
        padded[: x.shape[0], ...] = x
        pieces = [torch.empty_like(padded) for _ in space.local_sizes]
        dist.all_gather(pieces, padded, group=space.group)
        return torch.cat(
            [piece[:size, ...] for piece, size in zip(pieces, space.local_sizes, strict=True)]
        )

    def todense(self) -> Any:
        """Refused: the rows of a sharded operator live on several processes."""
        message = (
            "a DistributedOperator has no local dense form; gather A @ e_j with gather() "
            "yourself if the whole matrix is small enough"
        )
        raise TypeError(message)

    def __repr__(self) -> str:
        n = self._space.global_size
        return (
            f"<{n}x{n} DistributedOperator(rank={self.rank}, local_rows={self._shape[0]}, "
            f"dtype={dtype_name(self._dtype)}, device={self._device}, "
            f"symmetric={self._symmetric}, psd={self._psd})>"
        )

    def _checked_output(self, y: Any, columns: int | None) -> Any:
        expected = (self._shape[0],) if columns is None else (self._shape[0], columns)
        if tuple(y.shape) != expected:
            message = (
                f"the user matvec on rank {self.rank} returned shape {tuple(y.shape)}, "
                f"expected the local rows {expected}"
            )
            raise ValueError(message)
        return y

    def _matvec(self, x: Any) -> Any:
        if self._gather:
            x = self.gather(x)
        return self._checked_output(self._user_matvec(x), None)

    def _matmat(self, X: Any) -> Any:
        if self._user_matmat is not None:
            full = self.gather(X) if self._gather else X
            return self._checked_output(self._user_matmat(full), X.shape[1])
        if self._gather:
            full = self.gather(X)  # one all_gather for the whole block
            block = self._by_columns(self._user_matvec, full, self._shape[0])
            return self._checked_output(block, X.shape[1])
        return self._by_columns(self._matvec, X, self._shape[0])


def _agreed_sizes(
    local_size: Any, global_size: Any, dtype: Any, group: Any, device: Any
) -> tuple[int, ...]:
    """All-gather every rank's sizes and dtype; raise the same ``ValueError`` on every rank."""
    import torch
    import torch.distributed as dist

    def as_int(value: Any, missing: int) -> int:
        if value is None:
            return missing
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return _NOT_AN_INTEGER
        return int(value)

    name = dtype_name(dtype)
    code = _DTYPE_NAMES.index(name) if name in _DTYPE_NAMES else -1
    mine = torch.tensor(
        [as_int(local_size, _NOT_AN_INTEGER), as_int(global_size, -1), code],
        dtype=torch.int64,
        device=device,
    )
    everyone = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
    dist.all_gather(everyone, mine, group=group)
    rows = [tuple(int(v) for v in t) for t in everyone]
    locals_ = [r[0] for r in rows]
    globals_ = {r[1] for r in rows}
    codes = {r[2] for r in rows}
    problems = []
    if any(size < 0 for size in locals_):
        problems.append("every local_size must be an integer >= 0")
    if len(globals_) > 1:
        problems.append("the ranks passed different global_size values")
    elif globals_ != {-1} and -1 not in globals_ and sum(locals_) != globals_.pop():
        problems.append(f"the local sizes add up to {sum(locals_)}, not to global_size")
    if len(codes) > 1:
        problems.append("the ranks passed different dtypes")
    if problems:
        given = ", ".join(
            f"rank {r}: local_size={'?' if row[0] == _NOT_AN_INTEGER else row[0]}, "
            f"global_size={row[1] if row[1] >= 0 else None}, "
            f"dtype={_DTYPE_NAMES[row[2]] if row[2] >= 0 else 'other'}"
            for r, row in enumerate(rows)
        )
        message = (
            f"inconsistent DistributedOperator across the ranks: {'; '.join(problems)} "
            f"({given}); pass each rank's own row count and the same global_size and dtype "
            "everywhere"
        )
        raise ValueError(message)
    return tuple(locals_)
