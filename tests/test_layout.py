"""The package's two layers: the core (``vae_lib``) never imports the reproduction pipeline
(``vae_lib.pipeline``) nor what only the pipeline needs, and no module imports in a circle."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from helpers import run_and_see_if_tensorflow_loads

PACKAGE = Path(__file__).resolve().parent.parent / "vae_lib"
CORE = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__"))
PIPELINE_ONLY = ("vae_lib.pipeline", "papermill", "distributed", "dask", "nbformat", "nbconvert", "jupytext")


def test_importing_every_core_module_loads_nothing_of_the_pipeline():
    code = "import sys\n" + "".join(f"import vae_lib.{m}\n" for m in CORE) + (
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {PIPELINE_ONLY!r}[1:] "
        f"or m.startswith('vae_lib.pipeline')))")
    printed, _ = run_and_see_if_tensorflow_loads(code)
    assert printed == "[]", printed
    assert len(CORE) >= 10  # the check above saw the whole core


def _imports(path: Path) -> set[str]:
    """The vae_lib modules ``path`` imports (at any depth of its code), as dotted names."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" for a in node.names]
            found.update(n if (PACKAGE.parent / (n.replace(".", "/") + ".py")).is_file() else target
                         for n in names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.split(".")[0] == "vae_lib"}


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        graph[name] = {m.removesuffix(".__init__") for m in _imports(path)} - {name}
    return graph


def test_the_core_imports_no_pipeline_module_at_all():
    """Also inside functions (the check above sees only what runs at import)."""
    graph = _graph()
    offenders = {m: sorted(d for d in deps if d.startswith("vae_lib.pipeline"))
                 for m, deps in graph.items() if not m.startswith("vae_lib.pipeline")
                 and m != "vae_lib.__main__"}
    assert not {m: d for m, d in offenders.items() if d}


def test_no_import_cycles():
    graph = _graph()
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if dep not in graph:
                continue
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_the_cycle_check_can_fail(monkeypatch):
    """Two modules that import each other are found."""
    graph = {"a": {"b"}, "b": {"a"}}
    monkeypatch.setattr(sys.modules[__name__], "_graph", lambda: graph)
    with pytest.raises(AssertionError):
        test_no_import_cycles()
