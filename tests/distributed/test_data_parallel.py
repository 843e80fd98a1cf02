"""Data-parallel curvature operators and SFN optimizers on gloo ranks against one process.

Each rank holds a shard of one data set; the products, gradient and loss of the distributed
operators must equal those of a single-process operator on all the data, with exactly one
all-reduce per product, and be bit-identical on every rank. Several checks share one worker
call, because every spawn of the ranks costs a few seconds.
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

from tests.distributed.launch import run_on_ranks  # noqa: E402

N_SAMPLES = 16
RTOL = 1e-12


# ---------------------------------------------------------------------- shared set-up
def _model(hidden: int = 5):
    from torch import nn

    torch.manual_seed(0)  # the same initial parameters on every rank
    return nn.Sequential(nn.Linear(3, hidden), nn.Tanh(), nn.Linear(hidden, 2)).double()


def _data():
    generator = torch.Generator().manual_seed(1)
    inputs = torch.randn(N_SAMPLES, 3, generator=generator, dtype=torch.float64)
    targets = torch.randn(N_SAMPLES, 2, generator=generator, dtype=torch.float64)
    return inputs, targets


def _shard(sizes, rank):
    inputs, targets = _data()
    start = sum(sizes[:rank])
    return inputs[start : start + sizes[rank]], targets[start : start + sizes[rank]]


def _vectors(n):
    generator = torch.Generator().manual_seed(2)
    v = torch.randn(n, generator=generator, dtype=torch.float64)
    return v, torch.randn(n, 3, generator=generator, dtype=torch.float64)


class _CollectiveCounter:
    """Count calls (and reduced elements) of all_reduce, all_gather and broadcast."""

    def __init__(self):
        import torch.distributed as dist

        self.dist = dist
        self.calls = {"all_reduce": 0, "all_gather": 0, "broadcast": 0}
        self.numel = 0
        self.saved = {name: getattr(dist, name) for name in self.calls}

    def __enter__(self):
        for name, original in self.saved.items():
            setattr(self.dist, name, self._counting(name, original))
        return self

    def __exit__(self, *exc_info):
        for name, original in self.saved.items():
            setattr(self.dist, name, original)

    def _counting(self, name, original):
        def wrapper(tensor, *args, **kwargs):
            self.calls[name] += 1
            if name == "all_reduce":
                self.numel += tensor.numel()
            return original(tensor, *args, **kwargs)

        return wrapper

    def total(self):
        return sum(self.calls.values())


def _relative_error(a, b):
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def _operator_results(rank, sizes):
    """Distributed and single-process products of both operators, and collective counts."""
    from hvpseries.nn import GGNOperator, HessianOperator

    loss_fn = torch.nn.MSELoss()
    out = {}
    for cls in (HessianOperator, GGNOperator):
        model = _model()
        reference = cls(model, loss_fn, _data(), process_group=False)
        n = reference.shape[0]
        v, V = _vectors(n)
        with _CollectiveCounter() as counter:
            operator = cls(model, loss_fn, _shard(sizes, rank))
            construction = dict(counter.calls)
            before = counter.total()
            Hv = operator @ v
            matvec_calls, matvec_numel = counter.total() - before, counter.numel
            before = counter.total()
            HV = operator @ V
            matmat_calls = counter.total() - before
            before, numel_before = counter.total(), counter.numel
            alone = operator.loss()
            loss_calls, loss_numel = counter.total() - before, counter.numel - numel_before
            before = counter.total()
            loss, gradient = operator.loss_and_gradient()
            again = operator.gradient()
            gradient_calls = counter.total() - before
            before = counter.total()
            cached = operator.loss()
            cached_loss_calls = counter.total() - before
        out[cls.__name__] = {
            "construction": construction,
            "matvec_calls": matvec_calls,
            "matvec_numel": matvec_numel,
            "matmat_calls": matmat_calls,
            "gradient_calls": gradient_calls,
            "gradient_cached": bool(torch.equal(again, gradient)),
            "loss_collectives": (loss_calls, loss_numel, cached_loss_calls),
            "loss_cached": cached is loss,
            "n_samples": (operator.n_samples, operator.n_local_samples),
            "errors": {
                "matvec": _relative_error(Hv, reference @ v),
                "matmat": _relative_error(HV, reference @ V),
                "gradient": _relative_error(gradient, reference.gradient()),
                "loss": _relative_error(loss, reference.loss_and_gradient()[0]),
                "loss alone": _relative_error(alone, reference.loss()),
            },
            "values": (Hv, HV, gradient, loss, alone),
            "v_untouched": bool(torch.equal(v, _vectors(n)[0])),
        }
    return out


def _caught(function):
    try:
        function()
    except (ValueError, RuntimeError) as error:
        return type(error).__name__, str(error)
    return None


# ---------------------------------------------------------------------- workers
def _operator_worker(rank, world_size, shardings):
    return [_operator_results(rank, sizes) for sizes in shardings]


def _error_and_wrapper_worker(rank, world_size):
    """Mismatched ranks, a failing rank, a DDP-wrapped model and the process_group switch."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from hvpseries.nn import HessianOperator

    loss_fn = torch.nn.MSELoss()
    sizes = (9, 7)
    results = {}
    results["hidden"] = _caught(
        lambda: HessianOperator(_model(5 if rank == 0 else 6), loss_fn, _shard(sizes, rank))
    )

    def different_values():
        model = _model()
        if rank == 1:
            with torch.no_grad():
                model[0].bias.add_(1.0)
        HessianOperator(model, loss_fn, _shard(sizes, rank))

    results["values"] = _caught(different_values)

    def bad_targets():
        inputs, targets = _shard(sizes, rank)
        HessianOperator(_model(), loss_fn, (inputs, targets[:-1] if rank == 1 else targets))

    results["bad_data"] = _caught(bad_targets)

    def bad_update():
        operator = HessianOperator(_model(), loss_fn, _shard(sizes, rank))
        inputs, targets = _shard(sizes, rank)
        operator.update((inputs, targets[:-1] if rank == 0 else targets))

    results["bad_update"] = _caught(bad_update)

    def random_on_rank_one():
        # The same parameters on both ranks; rank 1 alone adds Dropout (train mode).
        tail = torch.nn.Dropout(0.5) if rank == 1 else torch.nn.Identity()
        operator = HessianOperator(
            torch.nn.Sequential(_model(), tail),
            loss_fn,
            _shard(sizes, rank),
            check_deterministic=True,
        )
        operator @ _vectors(operator.shape[0])[0]

    results["random_rank"] = _any_error(random_on_rank_one)
    # The group still works after all of these (no rank is left inside a collective).
    probe = torch.ones(1)
    dist.all_reduce(probe)
    results["probe"] = float(probe)

    model = _model()
    reference = HessianOperator(model, loss_fn, _data(), process_group=False)
    v, _ = _vectors(reference.shape[0])
    wrapped = DistributedDataParallel(model)
    operator = HessianOperator(wrapped, loss_fn, _shard(sizes, rank))
    results["ddp"] = {
        "unwrapped": operator.model is model,
        "group": operator.process_group is not None,
        "error": _relative_error(operator @ v, reference @ v),
    }
    local = HessianOperator(model, loss_fn, _shard(sizes, rank), process_group=False)
    results["local"] = (local.process_group, local.n_samples)
    results["type_error"] = None
    try:
        HessianOperator(model, loss_fn, _shard(sizes, rank), process_group=True)
    except TypeError as error:
        results["type_error"] = str(error)
    return results


def _optimizer_trajectories(shard, steps):
    from hvpseries.optim import KrylovSFN, LazySFN, SeriesSFN

    trajectories = {}
    for cls, options in (
        (SeriesSFN, {"damping": 0.5, "num_terms": 8}),
        (KrylovSFN, {"damping": 0.5, "maxiter": 10}),
        (LazySFN, {"damping": 0.5, "rank": 5, "refresh_every": 2}),
    ):
        model = _model()
        optimizer = cls.from_model(model, torch.nn.MSELoss(), **options)
        losses, parameters = [], []
        for _ in range(steps):
            losses.append(optimizer.step(data=shard))
            parameters.append(optimizer.flat_parameters())
        trajectories[cls.__name__] = {
            "losses": losses,
            "parameters": parameters,
            "damping": optimizer.damping,
            "counters": optimizer.counters,
        }
    return trajectories


def _optimizer_worker(rank, world_size, sizes, steps):
    from hvpseries.optim import LocalClosureWarning, SeriesSFN

    results = _optimizer_trajectories(_shard(sizes, rank), steps)
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    optimizer = SeriesSFN([x], damping=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optimizer.step(lambda: (x**4).sum() - (x**2).sum())
        optimizer.step(lambda: (x**4).sum() - (x**2).sum())
    results["closure_warnings"] = [
        (w.category is LocalClosureWarning, str(w.message), w.filename) for w in caught
    ]
    results["ddp"] = _ddp_alternation(_shard(sizes, rank), steps)
    return results


def _ddp_alternation(shard, steps):
    """SeriesSFN steps on a DDP-wrapped model, alternating with DDP's own SGD steps."""
    from torch.nn.parallel import DistributedDataParallel

    from hvpseries.optim import SeriesSFN

    model = _model()
    wrapped = DistributedDataParallel(model)
    sfn = SeriesSFN.from_model(wrapped, torch.nn.MSELoss(), damping=0.5, num_terms=8)
    sgd = torch.optim.SGD(wrapped.parameters(), lr=0.05)
    inputs, targets = shard
    for _ in range(steps):
        sfn.step(data=shard)
        sgd.zero_grad()
        torch.nn.functional.mse_loss(wrapped(inputs), targets).backward()  # DDP averages
        sgd.step()
    return [p.detach().clone() for p in model.parameters()]


def _ddp_alternation_reference(data, steps, world_size, sizes):
    """The same alternation in one process: the SGD gradient is DDP's mean of rank means."""
    from hvpseries.optim import SeriesSFN

    model = _model()
    sfn = SeriesSFN.from_model(model, torch.nn.MSELoss(), damping=0.5, num_terms=8)
    sgd = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(steps):
        sfn.step(data=data)
        sgd.zero_grad()
        for rank in range(world_size):
            inputs, targets = _shard(sizes, rank)
            loss = torch.nn.functional.mse_loss(model(inputs), targets) / world_size
            loss.backward()
        sgd.step()
    return [p.detach().clone() for p in model.parameters()]


# ---------------------------------------------------------------------- tests
def _check_operator_results(per_rank, world_size):
    for name in ("HessianOperator", "GGNOperator"):
        results = [ranks[name] for ranks in per_rank]
        n_local = [r["n_samples"][1] for r in results]
        assert [r["n_samples"][0] for r in results] == [N_SAMPLES] * world_size
        assert sum(n_local) == N_SAMPLES
        for r in results:
            # Construction: one all-gather of the agreement check, nothing else.
            assert r["construction"] == {"all_reduce": 0, "all_gather": 1, "broadcast": 0}
            assert r["matvec_calls"] == 1
            assert r["matvec_numel"] == 32  # the 32 parameters of the 3-5-2 network
            assert r["matmat_calls"] == 1
            assert r["gradient_calls"] == 1  # loss and gradient together; then cached
            assert r["gradient_cached"]
            # loss() alone: one all-reduce of one number; none where the gradient is cached
            assert r["loss_collectives"] == (1, 1, 0)
            assert r["loss_cached"]
            assert r["v_untouched"]
            for what, error in r["errors"].items():
                assert error <= RTOL, (name, what, error, n_local)
        # Bit-identical on every rank: Hv, HV, gradient, loss.
        for index, value in enumerate(results[0]["values"]):
            for other in results[1:]:
                assert torch.equal(other["values"][index], value), (name, index)


def _check_raised_everywhere(outcome, rank, failing_rank, own, others):
    """The failing rank raised ``own`` (kind, text); every other rank a RuntimeError naming it."""
    kind, message = outcome
    if rank == failing_rank:
        assert kind == own[0] and own[1] in message, outcome
    else:
        assert kind == "RuntimeError" and others in message, outcome


def test_two_ranks_match_one_process_with_one_all_reduce_per_product():
    shardings = [(9, 7), (N_SAMPLES, 0)]  # the second with an empty shard on rank 1
    per_rank = run_on_ranks(_operator_worker, 2, shardings)
    for index in range(len(shardings)):
        _check_operator_results([ranks[index] for ranks in per_rank], 2)


def test_three_uneven_ranks_match_one_process():
    per_rank = run_on_ranks(_operator_worker, 3, [(7, 5, 4)])
    _check_operator_results([ranks[0] for ranks in per_rank], 3)


def test_errors_reach_every_rank_and_ddp_models_are_unwrapped():
    results = run_on_ranks(_error_and_wrapper_worker, 2)
    for rank, r in enumerate(results):
        kind, message = r["hidden"]
        assert kind == "ValueError"
        assert "rank(s) [1] differ from rank 0" in message
        assert "rank 0: 32 parameter elements" in message
        assert "rank 1: 38 parameter elements" in message
        kind, message = r["values"]
        assert kind == "ValueError"
        assert "parameter values differ between ranks (rank(s) [1]" in message
        # The failing rank raises its own error, the other one names it.
        _check_raised_everywhere(
            r["bad_data"], rank, 1, ("ValueError", "targets hold 6"), "rank(s) [1]"
        )
        _check_raised_everywhere(
            r["bad_update"],
            rank,
            0,
            ("ValueError", "targets hold 8"),
            "could not take their new data",
        )
        # Randomness on rank 1 only: both ranks raise (before, rank 0 hung in the product's
        # all-reduce until the group's timeout).
        kind, message = r["random_rank"]
        assert kind == "NondeterministicLossError"
        if rank == 1:
            assert "differs between two evaluations" in message and "Dropout" in message
        else:
            assert "on rank(s) [1] of the process group" in message
        assert r["probe"] == 2.0
        assert r["ddp"]["unwrapped"]
        assert r["ddp"]["group"]
        assert r["ddp"]["error"] <= RTOL
        assert r["local"] == (None, (9, 7)[rank])
        assert "process_group must be a torch.distributed.ProcessGroup" in r["type_error"]
        assert "got True" in r["type_error"]


def test_sfn_optimizers_stay_identical_on_every_rank_and_match_one_process():
    steps = 4
    results = run_on_ranks(_optimizer_worker, 2, (9, 7), steps)
    reference = _optimizer_trajectories(_data(), steps)
    # next to DistributedDataParallel: SFN steps alternating with DDP's first-order steps
    ddp_reference = _ddp_alternation_reference(_data(), steps, 2, (9, 7))
    for a, b, c in zip(results[0]["ddp"], results[1]["ddp"], ddp_reference, strict=True):
        assert torch.equal(a, b)
        assert float(torch.max(torch.abs(a - c))) <= 1e-10
    for name in ("SeriesSFN", "KrylovSFN", "LazySFN"):
        first, other = results[0][name], results[1][name]
        for a, b in zip(first["parameters"], other["parameters"], strict=True):
            assert torch.equal(a, b), name
        for a, b in zip(first["losses"], other["losses"], strict=True):
            assert torch.equal(a, b), name
        assert first["damping"] == other["damping"]
        assert first["counters"] == other["counters"] == reference[name]["counters"]
        assert first["counters"]["step"] + first["counters"]["rejected"] == steps
        assert first["counters"]["hvp"] > 0
        for a, b in zip(first["parameters"], reference[name]["parameters"], strict=True):
            assert float(torch.max(torch.abs(a - b))) <= 1e-10, name
        for a, b in zip(first["losses"], reference[name]["losses"], strict=True):
            assert abs(float(a - b)) <= 1e-12 * abs(float(b)), name
        # The run moved the parameters: a trajectory that stood still would match trivially.
        assert float(torch.max(torch.abs(first["parameters"][-1] - _start_parameters()))) > 1e-3
    for r in results:
        ((is_local_warning, message, filename),) = r["closure_warnings"]  # once per optimizer
        assert is_local_warning
        assert "2 ranks" in message
        assert "from_model" in message
        assert filename == __file__


def _start_parameters():
    from hvpseries.nn import flatten_params

    return flatten_params(list(_model().parameters()))


class _PickyModel(torch.nn.Module):
    """The test network, whose forward refuses batches of ``refused`` samples (an assertion)."""

    def __init__(self, refused):
        super().__init__()
        self.net = _model()
        self.refused = refused

    def forward(self, inputs):
        assert inputs.shape[0] != self.refused, "refused batch size"
        return self.net(inputs)


def _any_error(function):
    try:
        function()
    except Exception as error:  # whatever was raised
        return type(error).__name__, str(error)
    return None


def _other_exceptions_worker(rank, world_size):
    """A rank failing with an exception other than TypeError/ValueError/RuntimeError."""
    import torch.distributed as dist

    from hvpseries.nn import HessianOperator

    loss_fn = torch.nn.MSELoss()
    sizes = (9, 7)
    results = {}
    # Rank 1 holds 7 samples: the model's forward fails there during construction.
    results["build"] = _any_error(
        lambda: HessianOperator(_PickyModel(refused=7), loss_fn, _shard(sizes, rank))
    )
    operator = HessianOperator(_PickyModel(refused=5), loss_fn, _shard(sizes, rank))
    v, _ = _vectors(operator.shape[0])
    before = operator @ v
    inputs, targets = _shard(sizes, rank)
    # The new shard of rank 1 has 5 samples: its forward fails inside update(data).
    new = (inputs[:5], targets[:5]) if rank == 1 else (inputs, targets)
    results["update"] = _any_error(lambda: operator.update(new))
    # Every rank still holds the previous data, weighted by the previous global count.
    results["n_samples"] = (operator.n_samples, operator.n_local_samples)
    results["same_product"] = bool(torch.equal(operator @ v, before))
    probe = torch.ones(1)
    dist.all_reduce(probe)
    results["probe"] = float(probe)
    return results


def test_any_exception_on_one_rank_reaches_every_rank_and_keeps_the_state():
    results = run_on_ranks(_other_exceptions_worker, 2, collective_timeout=5.0, deadline=60.0)
    for rank, r in enumerate(results):
        refused = ("AssertionError", "refused batch size")
        _check_raised_everywhere(r["build"], rank, 1, refused, "could not be built on rank(s) [1]")
        _check_raised_everywhere(r["update"], rank, 1, refused, "could not take their new data")
        assert r["n_samples"] == (N_SAMPLES, (9, 7)[rank])
        assert r["same_product"]
        assert r["probe"] == 2.0


def _batch_norm_microbatch_worker(rank, world_size):
    """Train-mode BatchNorm, with microbatch_size splitting the batch on rank 0 only."""
    from torch import nn

    from hvpseries.nn import GGNOperator, HessianOperator

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2))
    model.double().train()
    loss_fn = torch.nn.MSELoss()
    results = {}
    for cls in (HessianOperator, GGNOperator):
        # 9 samples in pieces of 8 on rank 0; 7 samples, not split, on rank 1.
        operator = cls(model, loss_fn, _shard((9, 7), rank), microbatch_size=8)
        ones = torch.ones(operator.shape[0], dtype=torch.float64)
        before = _any_error(lambda op=operator, v=ones: op @ v)
        # New shards that are split nowhere: products work again on every rank.
        operator.update(_shard((8, 8), rank))
        after = bool(torch.all(torch.isfinite(operator @ ones)))
        results[cls.__name__] = (before, after)
    return results


def test_batch_norm_split_on_one_rank_raises_on_every_rank():
    results = run_on_ranks(_batch_norm_microbatch_worker, 2, collective_timeout=5.0, deadline=60.0)
    for r in results:
        for name in ("HessianOperator", "GGNOperator"):
            (kind, message), after = r[name]
            assert kind == "ValueError", (name, kind, message)
            assert "microbatch_size splits the batches" in message
            assert after
