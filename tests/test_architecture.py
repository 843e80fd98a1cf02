"""The package's tiers: each imports only from those below it, and the application is on top.

Tiers, bottom to top: ``_core`` (array API, vector space, results, scalar checks) ->
``_operators`` -> ``_solve`` (the spine) -> the methods (``_dense``, ``acceleration`` and
``krylov``, then ``series``) -> ``_front_end`` -> ``nn`` -> ``optim`` -> ``_app``. The
package's ``__init__`` files are facades over their tier and may be imported by the
application only.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

import hvpseries

PACKAGE = pathlib.Path(hvpseries.__file__).parent
TIERS = {
    "_core": 0,
    "_operators": 1,
    "_solve": 2,
    "_dense": 3,
    "acceleration": 3,
    "krylov": 3,
    "series": 4,
    "spectral": 4,
    "_front_end": 5,
    "nn": 6,
    "optim": 7,
    "_app": 8,
}
# The only cycle allowed: operator base <-> algebra (the base's ``@``, ``+``, ... build the
# algebra's operators, which subclass the base), imported inside the methods.
ALLOWED_CYCLE = {"hvpseries._operators._base", "hvpseries._operators._algebra"}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
ALL_MODULES = set(MODULES)


def _imports(path: pathlib.Path) -> set[str]:
    """Every hvpseries module ``path`` imports, at module level or inside functions."""
    package = list(path.relative_to(PACKAGE.parent).parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if not source.startswith("hvpseries"):
                continue
            submodules = {f"{source}.{alias.name}" for alias in node.names}
            found.update(submodules)
            if not submodules <= ALL_MODULES:  # a name from the module, not a submodule of it
                found.add(source)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("hvpseries"))
    return found


GRAPH = {
    name: {target for target in _imports(path) if target in MODULES and target != name}
    for name, path in MODULES.items()
}


def _tier(module: str) -> int | None:
    parts = module.split(".")
    return TIERS.get(parts[1]) if len(parts) > 1 else None


def test_every_subpackage_has_a_tier() -> None:
    folders = {p.parent.name for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE}
    assert folders == set(TIERS), "a new subpackage needs a tier here and in docs/architecture.rst"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _tier(m) is not None))
def test_no_upward_import(module: str) -> None:
    tier = _tier(module)
    upward = sorted(
        target for target in GRAPH[module] if target != "hvpseries" and (_tier(target) or -1) > tier
    )
    assert not upward, f"{module} (tier {tier}) imports from a higher tier: {upward}"


def test_only_the_application_imports_the_top_level_package() -> None:
    importers = sorted(
        m for m, targets in GRAPH.items() if "hvpseries" in targets and _tier(m) != TIERS["_app"]
    )
    assert importers == [], f"modules below the application import hvpseries itself: {importers}"


def test_no_cycle_but_operator_base_and_algebra() -> None:
    facades = {m for m, path in MODULES.items() if path.name == "__init__.py"}
    graph = {m: GRAPH[m] - facades for m in MODULES if m not in facades}
    cycles = [c for c in _strongly_connected(graph) if len(c) > 1]
    assert [set(c) for c in cycles] == [ALLOWED_CYCLE]


def test_hvpseries_never_imports_itself_through_importlib() -> None:
    offenders = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and str(node.args[0].value).startswith("hvpseries")
            ):
                offenders.append(name)
    assert offenders == []


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_torch_subpackages_are_lazy_attributes() -> None:
    pytest.importorskip("torch")
    code = (
        "import sys, hvpseries as hs\n"
        "assert 'torch' not in sys.modules, 'import hvpseries imported torch'\n"
        "assert {'nn', 'optim'} <= set(dir(hs))\n"
        "print(hs.optim.SeriesSFN.__name__, hs.nn.HessianOperator.__name__)\n"
        "assert 'torch' in sys.modules\n"
    )
    done = _run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["SeriesSFN", "HessianOperator"]


def test_torch_subpackage_without_torch_says_how_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "import hvpseries as hs\n"
        "hs.krylov.cg\n"
        "try:\n"
        "    hs.nn\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    done = _run_python(code)
    assert done.returncode == 0, done.stderr
    assert "pip install hvpseries[torch]" in done.stdout


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        hvpseries.missing  # noqa: B018
