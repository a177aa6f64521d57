"""The layers of docs/architecture.md hold, module by module: every import (at the top or inside a function body)
goes to the importer's own layer or a lower one, and no modules import each other in a cycle."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Lowest first. The stages are in data-flow order: a stage may read the formats of the stages before it.
LAYERS = ("pipeline", "quickstart", "dataset", "pretraining", "finetuning", "scripts", "publishing", "orchestration",
          "main")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in [REPO / "main.py"]
           + [p for package in LAYERS[:-1] for p in sorted((REPO / package).rglob("*.py"))]}


def _resolve(node) -> set:
    """The project modules an import statement loads: ``from a import b`` is module ``a.b`` when that is a module,
    else ``a`` itself."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES else node.module
                 for alias in node.names]
    found = set()
    for name in names:
        while name and name not in MODULES:  # ``import a.b.c`` where only ``a.b`` is ours
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def _import_nodes(module: str) -> list:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    return [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]  # function bodies too


GRAPH = {module: set().union(*map(_resolve, _import_nodes(module))) - {module} for module in MODULES}


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_own_layer_and_lower_ones(module):
    higher = sorted(other for other in GRAPH[module] if _layer(other) > _layer(module))
    assert not higher, f"{module} ({LAYERS[_layer(module)]}) imports a higher layer: {', '.join(higher)}"


def _cycles(graph: dict) -> list:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], [0]

    def visit(root):
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
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
                    if len(component) > 1:
                        components.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return components


def test_no_modules_import_each_other_in_a_cycle():
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_sees_a_cycle_through_a_function_body():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse("def f():\n    from pipeline import disk\n")
    assert _resolve(next(n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))) \
        == {"pipeline.disk"}


def test_imports_are_absolute():
    """A relative import would hide a module's layer from a reader (and from the tests above)."""
    assert [module for module in MODULES if any(getattr(node, "level", 0) for node in _import_nodes(module))] == []


def test_no_module_imports_by_a_string():
    """Plain imports only, so that a reader (and a tool) can follow every call. The one exception is the child
    process of a stage, which is handed its entry function's name on its command line by the runner."""
    for module, path in MODULES.items():
        if module == "orchestration.stage_process":
            continue
        text = path.read_text(encoding="utf-8")
        assert "import_module(" not in text and "resolve_name(" not in text, module
