"""The house rules of DESIGN.md, checked on the source: short modules and functions, no import cycles."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = [p for p in ROOT.rglob("*.py")
        if p.relative_to(ROOT).parts[0] not in (".venv", "tests", "migrations") and "__pycache__" not in p.parts]
MODULE_MAX_LINES = 300
FUNCTION_MAX_LINES = 40


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path, modules):
    """The project modules a module imports anywhere (in functions too), with the packages that run first."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            found.update(".".join(parts[:n]) for n in range(1, len(parts) + 1) if ".".join(parts[:n]) in modules)
    return found


def _cycle_from(graph, start):
    """One import cycle through `start`, or None (depth-first, paths kept short by a visited set)."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in graph[node]:
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


def test_no_module_is_longer_than_300_lines():
    long = {str(p.relative_to(ROOT)): n for p in CODE if (n := len(p.read_text().splitlines())) > MODULE_MAX_LINES}
    assert long == {}


def test_no_function_is_longer_than_40_lines():
    long = {}
    for path in CODE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > FUNCTION_MAX_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.name}"] = length
    assert long == {}


def test_no_import_cycle_counting_imports_inside_functions_and_package_inits():
    modules = {_module_name(p): p for p in CODE}
    graph = {name: {m for m in _imports(path, modules) if m != name and not name.startswith(m + ".")}
             for name, path in modules.items()}
    cycles = [c for name in sorted(graph) if (c := _cycle_from(graph, name))]
    assert cycles == []


def test_a_package_init_imports_nothing_so_importing_a_room_never_runs_its_neighbours():
    busy = [str(p.relative_to(ROOT)) for p in CODE if p.name == "__init__.py"
            and any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(ast.parse(p.read_text())))]
    assert busy == []
