"""The package's import structure: layers that import one way, no cycles, no hidden imports.

The imports are read from the source with ``ast`` (nothing is imported), so this test is
fast and fails with the file and line of each offending import.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "harmdrift"

# Lower layers first. A module may import its own subpackage and any layer below it.
# ``config`` and every ``<stage>.rules`` module are the top layer: the only code that reads
# config sections, builds back-ends and calls across stages (see ARCHITECTURE.md).
LAYERS = (
    ("core",),
    ("lm",),
    ("backends", "scorers"),
    ("data",),
    ("distill",),
    ("train",),
    ("generate",),
    ("evaluate",),
    ("audit",),
    ("repair",),
    ("open_domain",),
    ("control",),
    ("finetune",),
    ("report",),
)
TOP = len(LAYERS)
# report/ reads files the stages wrote; it must not depend on stage code.
ONLY_CORE = {"report"}
# Heavy third-party libraries may be imported inside functions, so light envs stay light.
LAZY_OK = {
    "torch",
    "transformers",
    "peft",
    "bitsandbytes",
    "openai",
    "accelerate",
    "detoxify",
    "h5py",
    "gguf",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer(module: str) -> int:
    if module == "harmdrift.config" or module.endswith(".rules"):
        return TOP
    sub = subpackage(module)
    for rank, names in enumerate(LAYERS):
        if sub in names:
            return rank
    return TOP if sub == "" else -1  # the package root sits on top; unknown = error below


def package_imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported harmdrift module, line, inside a function) for every package import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    known = modules()
    found = []
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    local = {id(sub) for fn in functions for sub in ast.walk(fn)}
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module]
            # `from harmdrift.x import y` where y is a module counts as importing x.y
            targets += [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known]
        for target in targets:
            if target.split(".")[0] == "harmdrift" and target in known:
                found.append((target, node.lineno, id(node) in local))
    return found


def third_party_lazy(path: Path) -> list[tuple[str, int]]:
    """Function-local imports of anything that is neither the package nor an allowed heavy library."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harmdrift"):
                out.append((node.module, node.lineno))
    return out


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in modules().items():
        graph[name] = {target for target, _, _ in package_imports(name, path) if target != name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each sorted."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                group.append(item)
                if item == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def _is_parent_package(module: str, target: str) -> bool:
    # Importing a module runs its package's __init__: that is not a dependency on it.
    return module.startswith(target + ".")


def test_no_import_cycles():
    graph = {m: {t for t in ts if not _is_parent_package(m, t)} for m, ts in import_graph().items()}
    assert find_cycles(graph) == []


def test_every_module_has_a_layer():
    assert [m for m in modules() if layer(m) < 0] == []


def test_layers_import_one_way():
    problems = []
    for name, path in modules().items():
        for target, line, _ in package_imports(name, path):
            if target == name or _is_parent_package(name, target):
                continue
            same = subpackage(target) == subpackage(name) and layer(name) != TOP
            if same:
                continue
            if layer(target) >= layer(name) and not (layer(name) == TOP and layer(target) == TOP):
                problems.append(f"{path.name}:{line} {name} (layer {layer(name)}) imports {target}")
            elif subpackage(name) in ONLY_CORE and subpackage(target) not in ("core", subpackage(name)):
                problems.append(f"{path.name}:{line} {name} may import only core, imports {target}")
    assert problems == []


def test_no_function_local_package_imports():
    problems = [
        f"{path.relative_to(PACKAGE)}:{line} imports {target} inside a function"
        for name, path in modules().items()
        for target, line in third_party_lazy(path)
    ]
    assert problems == []


def private_imports(module: str, source: str) -> list[tuple[str, int]]:
    """``(name, line)`` for every private name (leading underscore) this module imports from
    another package module: a name shared between modules is public, or lives where it is used."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "harmdrift" or node.module == module:
                continue
            found += [(f"{node.module}.{a.name}", node.lineno) for a in node.names if a.name.startswith("_")]
    return found


def test_no_module_imports_another_modules_private_names():
    problems = [
        f"{path.relative_to(PACKAGE)}:{line} imports the private name {name}"
        for module, path in modules().items()
        for name, line in private_imports(module, path.read_text(encoding="utf-8"))
    ]
    assert problems == []


def test_private_import_check_can_fail():
    source = "from harmdrift.lm.batch import _Row, inputs_after_prefix\nfrom harmdrift.lm.engine import _x\n"
    assert private_imports("harmdrift.lm.engine", source) == [("harmdrift.lm.batch._Row", 1)]


def test_checker_catches_a_cycle_and_an_upward_import():
    # The checks above must be able to fail: a two-module cycle is found, a lone module is not.
    assert find_cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    assert layer("harmdrift.core.io") < layer("harmdrift.report.figures") < layer("harmdrift.audit.rules")
