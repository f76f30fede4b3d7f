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
    code = ("import sys; import gad.pipeline, gad.evaluate, gad.teacher, gad.cli; "
            "assert 'vllm' not in sys.modules; assert 'sqlalchemy' not in sys.modules; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.stdout.strip() == "ok", proc.stderr[-2000:]
