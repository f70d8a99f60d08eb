"""The package's layering (docs/layers.md), read from the source with ``ast``: no import cycle
between modules, no import upward, none sideways between packages of one layer, and no
production module that imports the test doubles of ``emoreason.testing``.

Every import counts, also those inside functions (a lazy import is still a dependency)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "emoreason"

# unit (a core module, or a package) -> layer; a unit may import units of lower layers, its own
# modules, and (core only) other core modules. Keep in step with docs/layers.md.
LAYERS: dict[str, int] = {
    # 0 core: no emoreason imports beyond these
    "emoreason": 0, "emoreason.errors": 0, "emoreason.hardware": 0, "emoreason.audio": 0, "emoreason.labels": 0,
    "emoreason.config": 0, "emoreason.configs": 0, "emoreason.jsonl": 0, "emoreason.text": 0, "emoreason.cues": 0,
    "emoreason.llm_client": 0, "emoreason.startup": 0,
    # 1: data in, packaged weights
    "emoreason.data": 1, "emoreason.weights": 1,
    # 2: the model (with its processing), and the teacher (core + data + the LLM client only)
    "emoreason.model": 2, "emoreason.teacher": 2,
    # 3: what uses a model
    "emoreason.train": 3, "emoreason.inference": 3,
    # 4: evaluation (runs the inference engine)
    "emoreason.eval": 4,
    # 5: applications
    "emoreason.demo": 5, "emoreason.inference.server": 5, "emoreason.cli": 5, "emoreason.data_cli": 5,
    "emoreason.__main__": 6,  # `python -m emoreason`: the CLI's entry point
    # test doubles: may import anything, imported by nothing in the package
    "emoreason.testing": 6,
}
CORE = {unit for unit, layer in LAYERS.items() if layer == 0}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    """The most specific entry of LAYERS that contains ``module``."""
    best = ""
    for unit in LAYERS:
        if (module == unit or module.startswith(unit + ".")) and len(unit) > len(best):
            best = unit
    if not best:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/layers.md")
    return best


def known_modules() -> set[str]:
    return {module_name(p) for p in PACKAGE.rglob("*.py")}


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """emoreason modules imported by the file (``from x import y`` counts as x.y when that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in names:
            if name == "emoreason" or name.startswith("emoreason."):
                while name not in modules and "." in name:  # an attribute: the module that holds it
                    name = name.rpartition(".")[0]
                found.add(name)
    found.discard(here)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = known_modules()
    return {module_name(p): imports_of(p, modules) for p in PACKAGE.rglob("*.py")}


def test_every_module_has_a_layer(graph):
    for module in graph:
        unit_of(module)


def test_no_upward_or_sideways_import(graph):
    bad = []
    for module, imported in sorted(graph.items()):
        if module == "emoreason":
            continue  # the package facade re-exports Engine / load_model / train on first use (PEP 562)
        src = unit_of(module)
        for target in sorted(imported):
            dst = unit_of(target)
            if dst == src or LAYERS[dst] < LAYERS[src] or (src in CORE and dst in CORE):
                continue
            bad.append(f"{module} -> {target} ({src}: layer {LAYERS[src]}, {dst}: layer {LAYERS[dst]})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_teacher_uses_only_core_and_data(graph):
    for module, imported in graph.items():
        if unit_of(module) == "emoreason.teacher":
            assert {unit_of(t) for t in imported} <= CORE | {"emoreason.data", "emoreason.teacher"}, module


def test_no_import_cycle(graph):
    """Depth-first search over module imports; a back edge is a cycle."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_the_checker_sees_a_violation(tmp_path):
    """The walker finds relative, from-, lazy and attribute imports (so the tests above can fail)."""
    pkg = tmp_path / "emoreason" / "data"
    pkg.mkdir(parents=True)
    src = pkg / "x.py"
    src.write_text("def f():\n    from ..model import builder\n    from emoreason.eval.quotes import q\n    import emoreason.audio\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "emoreason"
    try:
        modules = {"emoreason.model.builder", "emoreason.eval.quotes", "emoreason.audio", "emoreason.data.x"}
        assert imports_of(src, modules) == {"emoreason.model.builder", "emoreason.eval.quotes", "emoreason.audio"}
    finally:
        PACKAGE = saved
