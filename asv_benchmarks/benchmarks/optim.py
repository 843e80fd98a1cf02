"""Saddle-free Newton steps against their parts: one gradient and one HVP, in the same run.

``track_step_over_parts`` times a whole optimizer step and, interleaved in the same process,
one gradient (with its double-backward graph) and one Hessian-vector product through that graph;
it reports ``step / (gradient + n_hvp * hvp)`` (target for SeriesSFN: at most 1.1).
"""

import timeit

from .common import pick, pin_threads, require_torch, significant

BATCH = pick(128, 256)
WIDTH = pick(64, 256)


def _problem():
    import torch

    pin_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, WIDTH),
        torch.nn.Tanh(),
        torch.nn.Linear(WIDTH, WIDTH),
        torch.nn.Tanh(),
        torch.nn.Linear(WIDTH, 10),
    )
    inputs, targets = torch.randn(BATCH, 64), torch.randint(0, 10, (BATCH,))

    def closure():
        return torch.nn.functional.cross_entropy(model(inputs), targets)

    return model, closure


def _optimizer(name, params):
    from hvpseries.optim import ExactSFN, KrylovSFN, SeriesSFN

    if name == "series":
        return SeriesSFN(params)
    if name == "krylov":
        return KrylovSFN(params, rtol=1e-2, maxiter=38)
    return ExactSFN(params)


class OptimizerStep:
    params = ["series", "krylov"]
    param_names = ["optimizer"]
    timeout = 300

    def setup(self, name):
        require_torch()
        self.model, self.closure = _problem()
        self.optimizer = _optimizer(name, self.model.parameters())
        self.optimizer.step(self.closure)  # warm up

    def time_step(self, name):
        self.optimizer.step(self.closure)

    def track_step_over_parts(self, name):
        import torch

        params = [p for p in self.model.parameters() if p.requires_grad]
        before = self.optimizer.counters["hvp"]
        self.optimizer.step(self.closure)
        hvps = self.optimizer.counters["hvp"] - before

        def gradient():
            loss = self.closure()
            return loss, torch.autograd.grad(loss, params, create_graph=True)

        vectors = [torch.randn_like(p) for p in params]

        def step():
            self.optimizer.step(self.closure)

        best = {"gradient": float("inf"), "hvp": float("inf"), "step": float("inf")}
        for _ in range(3):
            best["step"] = min(best["step"], min(timeit.repeat(step, number=1, repeat=3)))
            _, grads = gradient()  # the step moved the parameters: a fresh graph

            def hvp(grads=grads):
                torch.autograd.grad(grads, params, grad_outputs=vectors, retain_graph=True)

            best["gradient"] = min(
                best["gradient"], min(timeit.repeat(gradient, number=5, repeat=3)) / 5
            )
            best["hvp"] = min(best["hvp"], min(timeit.repeat(hvp, number=10, repeat=3)) / 10)
        return significant(best["step"] / (best["gradient"] + hvps * best["hvp"]))

    track_step_over_parts.unit = "ratio"
