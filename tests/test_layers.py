"""The architecture's one hard rule: imports point downwards. gad/ is usable from a notebook."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

FORBIDDEN_IN_GAD = {"fastapi", "gradio", "celery", "kombu", "sqlalchemy", "alembic", "redis", "app", "worker"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_gad_imports_no_web_queue_or_database_code():
    offenders = {str(p.relative_to(REPO)): sorted(imported_roots(p) & FORBIDDEN_IN_GAD)
                 for p in (REPO / "gad").rglob("*.py") if imported_roots(p) & FORBIDDEN_IN_GAD}
    assert offenders == {}


def test_workers_do_not_import_the_web_layer():
    for p in (REPO / "worker").rglob("*.py"):
        assert not imported_roots(p) & {"fastapi", "gradio"}, p


def _offenders(folder: str, forbidden: set[str], *, modules: set[str] = frozenset()) -> dict:
    out = {}
    for p in (REPO / folder).rglob("*.py"):
        bad = imported_roots(p) & forbidden | {m for m in imported_modules(p) if m.startswith(tuple(modules))}
        if bad:
            out[str(p.relative_to(REPO))] = sorted(bad)
    return out


def imported_modules(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            mods |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods.add(node.module)
    return mods


def test_app_never_imports_worker():
    assert _offenders("app", {"worker"}) == {}


def test_services_import_no_web_framework_and_no_routes():
    assert _offenders("app/services", {"fastapi", "gradio", "starlette", "uvicorn", "worker"},
                      modules={"app.api", "app.ui", "app.cli"}) == {}
    assert _offenders("app/db", {"fastapi", "gradio", "starlette"}, modules={"app.services", "app.api"}) == {}


def test_the_ui_calls_services_not_routes():
    assert _offenders("app/ui", {"worker"}, modules={"app.api.routes"}) == {}


def test_gad_imports_without_vllm_and_without_side_effects():
    code = ("import sys; import gad.training.pipeline, gad.llm.evaluate, gad.llm.teacher, gad.cli; "
            "assert 'vllm' not in sys.modules; assert 'sqlalchemy' not in sys.modules; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.stdout.strip() == "ok", proc.stderr[-2000:]


# --- the module graph: no circles, and the arrows docs/architecture.md draws -------------------------------
def module_graph() -> dict[str, set[str]]:
    """Every module of gad/, app/ and worker/ -> the project modules it imports (anywhere in the file, lazy
    imports included: a circle through a function-level import is still a circle to the reader)."""
    files = {}
    for pkg in ("gad", "app", "worker"):
        for p in (REPO / pkg).rglob("*.py"):
            name = ".".join(p.relative_to(REPO).with_suffix("").parts)
            files[name.removesuffix(".__init__")] = p
    graph = {}
    for name, path in files.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        resolved = set()
        for t in targets:
            while t and t not in files:
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):  # a module may import its own package
                resolved.add(t)
        graph[name] = resolved
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_circles_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_through_others():
    assert circles(module_graph()) == []


def _arrows(graph, source: str, target: str, allowed: dict[str, set[str]] = {}) -> list[str]:  # noqa: B006
    return sorted(f"{m} -> {t}" for m, ts in graph.items() if m == source or m.startswith(source + ".")
                  for t in ts if (t == target or t.startswith(target + ".")) and t not in allowed.get(m, set()))


def test_the_worker_reaches_the_library_through_services():
    """worker/ holds thin Celery tasks: what a job does lives in app/services (which calls gad)."""
    graph = module_graph()
    assert _arrows(graph, "worker", "gad", allowed={"worker.__main__": {"gad.training.progress"}}) == []
    assert _arrows(graph, "worker", "app.db.models") == []


def test_pages_and_routes_query_through_services():
    """The dashboard's pages and the API's routes hold no queries: no SQLAlchemy, no models, no sessions of
    their own (the request's session comes from app.api.deps / app.ui's session helper)."""
    graph = module_graph()
    for room in ("app.ui", "app.api.routes"):
        assert _arrows(graph, room, "app.db.models") == [], room
    for folder in ("app/ui", "app/api/routes"):
        assert _offenders(folder, {"sqlalchemy"}) == {}, folder
