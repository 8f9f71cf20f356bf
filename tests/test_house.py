"""The house rules of DESIGN.md, checked on the source: rooms that import one way, no import cycles, short modules
and functions."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = [p for p in ROOT.rglob("*.py")
        if p.relative_to(ROOT).parts[0] not in (".venv", "tests", "migrations") and "__pycache__" not in p.parts]
MODULE_MAX_LINES = 300
# models.py holds every table (a new table is a model there, whoever uses it): the one module allowed to be longer.
LONGER_ALLOWED = {"models.py": 400}
FUNCTION_MAX_LINES = 40

# The rooms from the bottom up. A room imports only rooms of lower layers: the base, then the seams (one per outside
# system, never importing each other), then the services, each above the ones it uses, then the entry points, which
# may use any room below and each other. A lower room that must tell an upper one something takes a callback.
LAYERS = (
    ("errors",),
    ("config",),
    ("target", "logs"),
    ("models",),
    ("database", "reads", "host", "broker"),
    ("fleet",),
    ("cluster",),
    ("runlog",),
    ("beat",),
    ("security",),
    ("health",),
    ("supervision",),
    ("web", "cli", "background", "launcher", "celery_setup", "embedded", "worker_commands",
     "app", "celery_app", "scripts", "bench", "gunicorn"),
)
ENTRY_POINTS = LAYERS[-1]


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


def room_of(module):
    """`panel.runlog.cancel` is in the room runlog; `models` and `app` are rooms of their own."""
    parts = module.split(".")
    return parts[1] if parts[0] == "panel" and len(parts) > 1 else parts[0]


def room_arrows():
    """{(from room, to room): [one module import that makes the arrow]} over the whole tree."""
    modules = {_module_name(p): p for p in CODE}
    arrows = {}
    for name, path in modules.items():
        for imported in _imports(path, modules):
            if imported != "panel" and room_of(name) != room_of(imported):
                arrows.setdefault((room_of(name), room_of(imported)), f"{name} -> {imported}")
    return arrows


def _layer(room):
    return next(i for i, rooms in enumerate(LAYERS) if room in rooms)


def test_every_room_has_a_place_in_the_layers():
    rooms = {room_of(_module_name(p)) for p in CODE} - {"panel"}
    assert sorted(r for r in rooms if not any(r in layer for layer in LAYERS)) == []


def test_rooms_import_only_downward_so_the_seams_call_nothing_of_ours():
    upward = {arrow: example for arrow, example in room_arrows().items()
              if not (_layer(arrow[1]) < _layer(arrow[0]) or {*arrow} <= {*ENTRY_POINTS})}
    assert upward == {}


def test_the_rooms_form_no_loop():
    graph = {}
    for a, b in room_arrows():
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    assert [c for room in sorted(graph) if (c := _cycle_from(graph, room))] == []


def test_no_module_is_longer_than_300_lines():
    long = {name: n for p in CODE if (n := len(p.read_text().splitlines()))
            > LONGER_ALLOWED.get(name := str(p.relative_to(ROOT)), MODULE_MAX_LINES)}
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
