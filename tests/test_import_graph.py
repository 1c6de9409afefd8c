"""No import cycles inside m2f_teach: each room imports the rooms below it, never back up.

The graph is read from the source with `ast` (nothing is imported), with every `import` in a
module, at the top or inside a function: a lazy import still ties two modules together, and a
cycle through one only waits for the first call to bite.
"""
import ast
from pathlib import Path

import m2f_teach

PACKAGE_DIR = Path(m2f_teach.__file__).parent


def module_names(package_dir: Path) -> dict[str, tuple[Path, bool]]:
    """`{"m2f_teach.model.config": (path, is_package)}` for every .py file under `package_dir`."""
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        names[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return names


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module → the package's modules it imports (`from .x import y` counts `x.y` if it is a module)."""
    names = module_names(package_dir)
    root = package_dir.name
    graph = {}
    for module, (path, is_package) in names.items():
        here = module.split(".") if is_package else module.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else [])) \
                    if node.level else node.module
                found = [f"{base}.{a.name}" if f"{base}.{a.name}" in names else base for a in node.names]
            else:
                continue
            for name in found:
                while name and name not in names:        # `m2f_teach.model.config.M2FConfig` → the module
                    name = name.rpartition(".")[0]
                if name.split(".")[0] == root and name != module:
                    targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_module_of_m2f_teach_imports_itself_back():
    graph = import_graph(PACKAGE_DIR)
    assert len(graph) > 50 and graph["m2f_teach.tracing.shape_only"] >= {"m2f_teach.tracing.trace"}
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_lazy_import_back(tmp_path):
    package = tmp_path / "pkg"
    (package / "room").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "room" / "__init__.py").write_text("from .a import f\n")
    (package / "room" / "a.py").write_text("from ..b import g\n\ndef f():\n    return g()\n")
    (package / "b.py").write_text("def g():\n    from .room import a\n    return a\n")
    (package / "c.py").write_text("from . import b\n")
    assert cycles(import_graph(package)) == [["pkg.b", "pkg.room.a"]]
