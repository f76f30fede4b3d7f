"""A run's inputs and identity, checked before anything is queued (issue: runs you can trust, items 5-6):
paths resolved and checked on disk, hub ids well formed, run folders unique beyond one database,
a data folder that belongs to another database refused, and queue messages of another studio dropped."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.context import make_context
from app.db.models import Run
from app.db.session import session_scope
from app.enums import RunStatus
from app.errors import Conflict, InvalidInput
from app.services import runs as run_service
from app.settings import Settings


def test_paths_are_made_absolute_and_checked_before_queueing(studio_ctx, tiny_model, pairs_file, tmp_path,
                                                              monkeypatch):
    monkeypatch.chdir(pairs_file.parent)
    with session_scope(studio_ctx.sessions) as s:
        run = run_service.submit_run(s, studio_ctx.settings, {"student": str(tiny_model), "data": pairs_file.name})
        assert run.config["data"] == str(pairs_file.resolve())            # absolute: the worker has another cwd
        hub = run_service.submit_run(s, studio_ctx.settings, {"student": "Qwen/Qwen2.5-0.5B-Instruct",
                                                                "data": str(pairs_file)})
        assert hub.config["student"] == "Qwen/Qwen2.5-0.5B-Instruct"
    cases = [({"student": str(tiny_model), "data": "missing.jsonl"}, "data: no file at"),
             ({"student": "./no-such-model", "data": str(pairs_file)}, "neither an existing model folder nor a hub id"),
             ({"student": "not a hub id!", "data": str(pairs_file)}, "neither an existing model folder"),
             ({"student": str(pairs_file), "data": str(pairs_file)}, "not a model folder"),
             ({"student": str(tiny_model), "data": str(pairs_file), "teacher_responses": "nope.jsonl"},
              "teacher_responses: no file")]
    with studio_ctx.sessions() as s:
        for values, message in cases:
            with pytest.raises(InvalidInput, match=message):
                run_service.submit_run(s, studio_ctx.settings, values)
        s.rollback()
        assert s.query(Run).count() == 2                                     # nothing half-created


def test_runs_submit_refuses_a_missing_file_and_prints_no_id(tmp_path, tiny_model):
    env = {"GAD_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "app.cli", "runs", "submit", "--student", str(tiny_model),
                           "--data", "nowhere.jsonl"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"no file at {tmp_path / 'nowhere.jsonl'}" in proc.stderr and "Traceback" not in proc.stderr


def test_run_folders_are_unique_beyond_the_database(tmp_path, tiny_model, pairs_file):
    """Two databases, one run id each (both 1): their folders never collide."""
    folders = []
    for name in ("one", "two"):
        ctx = make_context(Settings(GAD_DATA_DIR=tmp_path / name, DATABASE_URL=f"sqlite:///{tmp_path / name}.db"))
        with session_scope(ctx.sessions) as s:
            run = run_service.submit_run(s, ctx.settings, {"student": str(tiny_model), "data": str(pairs_file)})
            assert run.id == 1
            folders.append(run.output_dir.rsplit("/", 1)[-1])
        ctx.close()
    assert folders[0] != folders[1] and all(f.startswith("run-1-") for f in folders)


def test_a_data_folder_of_another_database_is_refused_at_start(tmp_path):
    data = tmp_path / "data"
    first = make_context(Settings(GAD_DATA_DIR=data, DATABASE_URL=f"sqlite:///{tmp_path / 'a.db'}"))
    first.close()
    again = make_context(Settings(GAD_DATA_DIR=data, DATABASE_URL=f"sqlite:///{tmp_path / 'a.db'}"))
    again.close()                                                            # the same database: fine
    with pytest.raises(Conflict, match="belongs to another studio database"):
        make_context(Settings(GAD_DATA_DIR=data, DATABASE_URL=f"sqlite:///{tmp_path / 'b.db'}"))


def test_a_worker_drops_a_message_queued_by_another_studio(studio_ctx, tiny_model, pairs_file):
    from worker.celery_app import make_celery

    with session_scope(studio_ctx.sessions) as s:
        run_id = run_service.submit_run(s, studio_ctx.settings,
                                        {"student": str(tiny_model), "data": str(pairs_file)}).id
    app = make_celery(studio_ctx.settings, studio_ctx)
    app.loader.import_default_modules()
    task = app.tasks["gad.train_run"]
    assert task.apply(args=[run_id], kwargs={"studio_id": "f" * 32}).get() == "foreign"
    with studio_ctx.sessions() as s:
        run = s.get(Run, run_id)
        assert run.status == RunStatus.queued and run.attempts == 0           # untouched
