"""The layout holds: imports flow one way (no cycle between modules), every module imports on its own in a
fresh interpreter whatever the order, and the command line's flags come from the config dataclasses."""

import ast
import dataclasses
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gan_aug", "classifier")


def module_files():
    """Dotted module name -> file, for every module of the project's packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(path, modules):
    """The project modules `path` imports anywhere in it (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from a.b import c` imports a.b, and a.b.c when c is a module
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def import_graph():
    modules = module_files()
    return {name: imported_modules(path, modules) - {name} for name, path in modules.items()}


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan), each a sorted list."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_modules():
    graph = import_graph()
    assert len(graph) > 40  # the walk sees the whole project
    assert "gan_aug.config" in graph["classifier.config"]  # and reads `from x import y` edges
    assert cycles(graph) == []


# The layer order, in one place (docs: README "Architecture"): a module imports its own layer or lower ones only.
LAYERS = (
    ("core", ("gan_aug", "gan_aug.errors", "gan_aug.fileio", "gan_aug.config", "gan_aug.distributed", "gan_aug.legacy",
              "gan_aug.runtime", "gan_aug.sinks")),
    ("data", ("gan_aug.data",)),
    ("models", ("gan_aug.gan", "gan_aug.diffusion", "classifier")),
    ("products", ("gan_aug.synth", "gan_aug.metrics")),
    ("experiments", ("gan_aug.compare", "gan_aug.tune", "gan_aug.audit", "gan_aug.analyze")),
    ("faces", ("gan_aug.cli", "gan_aug.cli_config", "gan_aug.cli_compare", "gan_aug.cli_audit", "gan_aug.cli_analyze",
               "gan_aug.cli_evaluate", "gan_aug.cli_diffusion", "gan_aug.demo",
               "gan_aug.app", "gan_aug.__main__")),
)


def layer_of(module):
    """The layer of `module`: its longest matching prefix's (a package's modules are in its layer)."""
    matches = [(len(prefix), rank) for rank, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} is in no layer: add it to LAYERS"
    return max(matches)[1]


def test_every_import_goes_to_its_own_layer_or_below():
    graph = import_graph()
    upward = sorted(f"{m} ({LAYERS[layer_of(m)][0]}) -> {t} ({LAYERS[layer_of(t)][0]})"
                    for m, targets in graph.items() for t in targets if layer_of(t) > layer_of(m))
    assert not upward
    assert layer_of("gan_aug.data.prepared") == 1 and layer_of("gan_aug.compare.runner") == 4  # the rule can bite


@pytest.mark.slow
@pytest.mark.parametrize("order", ["sorted", "reversed", "shuffled"])
def test_every_module_imports_in_a_fresh_interpreter_in_any_order(order):
    names = sorted(name for name in module_files() if not name.endswith("__main__"))  # that one runs the CLI
    if order == "reversed":
        names.reverse()
    elif order == "shuffled":
        random.Random(20).shuffle(names)
    code = "import importlib\nfor name in %r:\n    importlib.import_module(name)\n" % names
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_module_is_over_400_lines():
    long = {name: n for name, path in module_files().items() if (n := len(path.read_text().splitlines())) > 400}
    assert not long


def test_flags_come_from_the_config_fields(run_cli):
    from gan_aug.gan.config import GanConfig

    help_text = run_cli("train-gan", "--help").output
    for field in dataclasses.fields(GanConfig):
        flag = field.metadata["flag"]
        if flag is False:  # config and --set only
            continue
        name = flag[0] if isinstance(flag, tuple) else flag or "--" + field.name.replace("_", "-")
        if field.default is True:
            name = "--no-" + field.name.replace("_", "-")
        assert name in help_text, name
    assert "Half-life of the generator average, in kimg. [2.0]" in " ".join(help_text.split())
