"""Hessian-vector products of neural-network losses: hvpseries.nn against raw torch recipes.

Models (float32, CPU, torch pinned to one thread): an MLP 8-50-1 on 692 samples (MSE), an MLP
64-256-256-10 on 256 samples, a small CNN and a CNN with BatchNorm in training mode on 64
28x28 images, and a small transformer (one ``nn.TransformerEncoderLayer``, width 32, 4 heads,
feedforward 64, no dropout, then a linear readout) on 32 sequences of length 16
(cross-entropy). Timed in the same run:

* ``time_gradient``: one gradient (forward + backward), the unit of the ratios;
* ``RawRecipes``: double backward through a *retained* gradient graph, ``torch.func.linearize``
  of the gradient applied repeatedly, a fresh ``torch.func.jvp(grad)`` per product;
* ``HessianProducts``: the operator per mode: a repeated product, the first product (operator
  construction and linearisation included), 8 products as one ``matmat`` and as a loop,
  peak memory, and ``track_*`` ratios (product / gradient, adapter / fastest raw recipe).

The raw ``torch.func`` recipes of the MSE model use ``((o - t) ** 2).mean()``: with the fused
``F.mse_loss`` torch 2.13 raises (jvp) or crashes (linearize). PyTorch's fused scaled-dot-product
attention kernels have first derivatives only, so the raw recipes of the transformer are set up
and run under ``sdpa_kernel([SDPBackend.MATH])``: the kernels ``HessianOperator`` switches its
curvature passes to by default (its ``AttentionBackendWarning`` is silenced here). Its gradient,
the unit of the ratios, stays on the default kernels, as the operator's loss and gradient do.
A mode that cannot run on a model is skipped (asv: ``NotImplementedError`` in ``setup``). Run
this file directly for a table of the ratios:
``cd asv_benchmarks && python -c "from benchmarks.nn import main; main()"``.
"""

import timeit

from .common import pick, pin_threads, require_torch, significant

THREADS = 1
MODELS = ["mlp-8-50-1", "mlp-64-256-256-10", "cnn", "cnn-batchnorm", "transformer"]
MODES = ["double-backward", "linearize", "forward-over-reverse", "finite-difference"]
RECIPES = ["double-backward-retained", "linearize-repeated", "jvp-grad-fresh"]
BLOCK = 8
IMAGE_BATCH = pick(64, 64)
SEQUENCES = (32, 16, 32)  # batch, length, width of the transformer's inputs
ATTENTION_MODELS = {"transformer"}  # run the raw recipes on the math attention backend


def make_problem(name):
    """Return ``(model, loss_fn, raw_loss_fn, (inputs, targets))`` in float32."""
    import torch
    from torch import nn

    pin_threads(THREADS)
    torch.manual_seed(0)
    if name == "mlp-8-50-1":
        model = nn.Sequential(nn.Linear(8, 50), nn.Tanh(), nn.Linear(50, 1))
        data = (torch.randn(692, 8), torch.randn(692, 1))
        return model, nn.MSELoss(), lambda o, t: ((o - t) ** 2).mean(), data
    if name == "mlp-64-256-256-10":
        model = nn.Sequential(
            nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
        )
        data = (torch.randn(256, 64), torch.randint(0, 10, (256,)))
    elif name == "transformer":
        batch, length, width = SEQUENCES
        layer = nn.TransformerEncoderLayer(
            width, nhead=4, dim_feedforward=64, dropout=0.0, batch_first=True
        )
        model = nn.Sequential(layer, nn.Flatten(), nn.Linear(length * width, 10)).train()
        data = (torch.randn(batch, length, width), torch.randint(0, 10, (batch,)))
    else:
        norm = (
            (lambda c: nn.BatchNorm2d(c)) if name == "cnn-batchnorm" else (lambda c: nn.Identity())
        )
        model = nn.Sequential(
            nn.Conv2d(1, 8, 3),
            norm(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3),
            norm(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 10),
        ).train()
        data = (torch.randn(IMAGE_BATCH, 1, 28, 28), torch.randint(0, 10, (IMAGE_BATCH,)))
    loss = nn.functional.cross_entropy
    return model, loss, loss, data


def attention_context(name):
    """The attention kernels of ``name``'s raw curvature recipes: the math backend or as is."""
    import contextlib

    if name not in ATTENTION_MODELS:
        return contextlib.nullcontext
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return lambda: sdpa_kernel([SDPBackend.MATH])


def raw_recipe(name, recipe):
    """A zero-argument function computing one HVP the plain torch way (set up once).

    The gradient runs on the default attention kernels; the curvature recipes of an attention
    model are set up and run on the math backend (the fused kernels have no second derivative).
    """
    import torch

    if recipe == "gradient":
        model, loss_fn, _, (inputs, targets) = make_problem(name)
        params = [p for p in model.parameters() if p.requires_grad]
        return lambda: torch.autograd.grad(loss_fn(model(inputs), targets), params)
    context = attention_context(name)
    with context():
        hvp = _raw_hvp(name, recipe)
    if name not in ATTENTION_MODELS:
        return hvp

    def hvp_on_math_kernels():
        with context():
            return hvp()

    return hvp_on_math_kernels


def _raw_hvp(name, recipe):
    import torch
    from torch.func import functional_call, grad, jvp, linearize

    model, loss_fn, raw_loss_fn, (inputs, targets) = make_problem(name)
    params = [p for p in model.parameters() if p.requires_grad]
    vector = [torch.randn_like(p) for p in params]
    if recipe == "double-backward-retained":
        gradient = torch.autograd.grad(loss_fn(model(inputs), targets), params, create_graph=True)
        return lambda: torch.autograd.grad(gradient, params, vector, retain_graph=True)
    # torch.func on train-mode BatchNorm needs the running-stat update switched off.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.track_running_stats = False
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    primals = tuple(p.detach() for p in params)

    def loss(ps):
        outputs = functional_call(model, dict(zip(names, ps, strict=True)), (inputs,))
        return raw_loss_fn(outputs, targets)

    tangents = tuple(vector)
    if recipe == "linearize-repeated":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, jvp_fn = linearize(grad(loss), primals)
        return lambda: jvp_fn(tangents)
    if recipe == "jvp-grad-fresh":
        return lambda: jvp(grad(loss), (primals,), (tangents,))[1]
    raise ValueError(recipe)


def adapter(name, mode):
    """``(build, H, v, V)``: a function building the operator, one built operator, vectors.

    Raises ``NotImplementedError`` (asv: skipped) where ``mode`` cannot run on the model: its
    first product fails, or the operator falls back to another mode.
    """
    import warnings

    import torch

    from hvpseries.nn import AttentionBackendWarning, HessianOperator

    # Each new operator of an attention model says once that it switched to the math kernels.
    warnings.filterwarnings("ignore", category=AttentionBackendWarning)
    model, loss_fn, _, data = make_problem(name)

    def build():
        return HessianOperator(model, loss_fn, data, mode=mode)

    H = build()
    generator = torch.Generator().manual_seed(1)
    v = torch.randn(H.shape[1], generator=generator)
    V = torch.randn(H.shape[1], BLOCK, generator=generator)
    try:
        H @ v  # warm up: build the linearisation
    except RuntimeError as error:
        message = f"mode={mode!r} cannot run on {name!r}: {error}"
        raise NotImplementedError(message) from error
    if mode != "auto" and H.mode != mode:
        message = f"mode={mode!r} cannot run on {name!r}: the operator fell back to {H.mode!r}"
        raise NotImplementedError(message)
    return build, H, v, V


def best_time(function, number=None, repeat=5):
    """Seconds per call: the minimum over ``repeat`` timings of ``number`` calls."""
    timer = timeit.Timer(function)
    if number is None:
        number, _ = timer.autorange()
        number = max(1, number // 4)
    return min(timer.repeat(repeat=repeat, number=number)) / number


class Gradient:
    params = [MODELS]
    param_names = ["model"]
    timeout = 300

    def setup(self, name):
        require_torch()
        self.gradient = raw_recipe(name, "gradient")
        self.gradient()

    def time_gradient(self, name):
        self.gradient()


class RawRecipes:
    params = [MODELS, RECIPES]
    param_names = ["model", "recipe"]
    timeout = 300

    def setup(self, name, recipe):
        require_torch()
        self.hvp = raw_recipe(name, recipe)
        self.hvp()

    def time_hvp(self, name, recipe):
        self.hvp()


class HessianProducts:
    params = [MODELS, MODES]
    param_names = ["model", "mode"]
    timeout = 600

    def setup(self, name, mode):
        require_torch()
        self.build, self.H, self.v, self.V = adapter(name, mode)

    def time_repeated_hvp(self, name, mode):
        self.H @ self.v

    def time_first_hvp(self, name, mode):
        self.build() @ self.v

    def time_matmat_8(self, name, mode):
        self.H @ self.V

    def time_loop_8(self, name, mode):
        for j in range(BLOCK):
            self.H @ self.V[:, j]

    def peakmem_first_hvp(self, name, mode):
        self.build() @ self.v

    def track_cached_megabytes(self, name, mode):
        return significant(self.H.cached_nbytes / 2**20)

    track_cached_megabytes.unit = "MiB"

    def track_hvp_over_gradient(self, name, mode):
        gradient = raw_recipe(name, "gradient")
        return significant(best_time(lambda: self.H @ self.v) / best_time(gradient))

    track_hvp_over_gradient.unit = "ratio"

    def track_matmat_8_over_loop_8(self, name, mode):
        def loop():
            for j in range(BLOCK):
                self.H @ self.V[:, j]

        return significant(best_time(lambda: self.H @ self.V) / best_time(loop))

    track_matmat_8_over_loop_8.unit = "ratio"


class AdapterOverhead:
    """The default mode against the fastest raw recipe, timed interleaved (target <= 1.1)."""

    params = [MODELS]
    param_names = ["model"]
    timeout = 600

    def setup(self, name):
        require_torch()
        _, self.H, self.v, _ = adapter(name, "auto")
        self.recipes = {recipe: raw_recipe(name, recipe) for recipe in RECIPES}

    def track_default_over_fastest_raw(self, name):
        fastest = min(best_time(recipe) for recipe in self.recipes.values())
        return significant(best_time(lambda: self.H @ self.v) / fastest)

    track_default_over_fastest_raw.unit = "ratio"

    def track_default_over_raw_double_backward(self, name):
        raw = best_time(self.recipes["double-backward-retained"])
        return significant(best_time(lambda: self.H @ self.v) / raw)

    track_default_over_raw_double_backward.unit = "ratio"


def _force_block(H, strategy):
    """Make an operator's matmat always batch or always loop (to measure both)."""
    fast, slow = [0.0] * 3, [1.0] * 3
    H._block_timings = {"batched": fast, "loop": slow} if strategy == "batched" else None


def main(rounds=7):  # pragma: no cover - a report for humans
    """Print per-model ratios, timing all recipes and modes interleaved, ``rounds`` times."""
    import torch

    print(f"torch {torch.__version__}, {THREADS} thread(s), float32; min over {rounds} rounds")
    for name in MODELS:
        gradient = raw_recipe(name, "gradient")
        calls = {"gradient": gradient}
        calls.update({f"raw {recipe}": raw_recipe(name, recipe) for recipe in RECIPES})
        firsts = {}
        choices = {}
        skipped = []
        for mode in MODES:
            try:
                build, H, v, V = adapter(name, mode)
            except NotImplementedError as error:
                skipped.append(str(error))
                continue
            calls[mode] = lambda H=H, v=v: H @ v
            firsts[mode] = (build, v)
            if mode != "finite-difference":
                batched, looped = adapter(name, mode)[1], adapter(name, mode)[1]
                _force_block(batched, "batched")
                _force_block(looped, "loop")
                calls[f"{mode} matmat8 batched/8"] = lambda H=batched, V=V: H @ V
                calls[f"{mode} matmat8 loop/8"] = lambda H=looped, V=V: H @ V
                # What track_matmat_8_over_loop_8 compares: the operator's own choice
                # (after its first blocks, which time both ways) against 8 matvecs.
                adaptive = adapter(name, mode)[1]
                for _ in range(8):
                    adaptive @ V
                calls[f"{mode} matmat8/8"] = lambda H=adaptive, V=V: H @ V
                calls[f"{mode} loop8/8"] = lambda H=adaptive, V=V: [
                    H @ V[:, j] for j in range(BLOCK)
                ]
                choices[mode] = adaptive._block_strategy()
        unit = best_time(gradient, repeat=3)
        number = max(1, int(0.05 / unit))
        times = {key: [] for key in calls}
        for _ in range(rounds):
            for key, call in calls.items():
                columns = BLOCK if key.endswith("/8") else 1  # a block call does 8 products
                count = max(1, number // columns)
                times[key].append(timeit.timeit(call, number=count) / count / columns)
        best = {key: min(values) for key, values in times.items()}
        fastest_raw = min(best[f"raw {recipe}"] for recipe in RECIPES)
        print(f"\n{name}: gradient {best['gradient'] * 1e3:.3f} ms")
        for key, value in best.items():
            print(f"  {key:38s} {value * 1e3:8.3f} ms  {value / best['gradient']:5.2f} x gradient")
        for reason in skipped:
            print(f"  skipped: {reason[:200]}")
        default = best[adapter(name, "auto")[1].mode]
        raw_retained = best["raw double-backward-retained"]
        print(f"  default / raw retained double backward: {default / raw_retained:.3f}")
        print(f"  default / fastest raw recipe:           {default / fastest_raw:.3f}")
        for mode, choice in choices.items():
            ratio = best[f"{mode} matmat8/8"] / best[f"{mode} loop8/8"]
            print(f"  matmat8 / loop8 {mode:22s} {ratio:.3f} (the operator chose {choice!r})")
        for mode, (build, v) in firsts.items():
            first = best_time(lambda build=build, v=v: build() @ v, number=1, repeat=2)
            print(f"  first product (build included) {mode:22s} {first * 1e3:8.2f} ms")
