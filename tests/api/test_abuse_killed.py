"""kill -9 of the web server (a real `gad-studio serve` process) after it stored an upload, and of the
worker in the middle of its import: no half dataset in the database, the file waits for its job, and a
start sweeps only what no one will read (scratch of dead processes, files of ended jobs)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import httpx
from sqlalchemy import func, select

from tests.api.conftest import PASSWORD
from tests.conftest import REPO, free_port, stop_group, wait_for
from tests.studio.conftest import studio_env


class ServerProcess:
    def __init__(self, env: dict, port: int, log: Path):
        self.env, self.port, self.log = env, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--no-ui", "--port", str(self.port),
                                          "--log-level", "warning"], env=self.env, cwd=REPO, stdout=fh, stderr=fh,
                                         start_new_session=True)
        wait_for(self._healthy, 90, "the web server")
        return self

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the server exited: {self.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        stop_group(self.proc)


def test_kill_9_of_the_server_and_of_the_worker_during_an_upload_loses_nothing_and_halves_nothing(tmp_path):
    """The server stores the upload and its job, then dies: the restart keeps the file for the job. The worker
    dies in the middle of the import: no half dataset; the job, retried, imports the whole file."""
    from app.context import make_context
    from app.db.models import Dataset, Job, Prompt
    from app.db.session import session_scope
    from app.services import lifecycle, users
    from app.settings import Settings
    from tests.studio.conftest import Worker

    data = tmp_path / "data"
    db_url = f"sqlite:///{data / 'studio.db'}"
    ctx = make_context(Settings(GAD_DATA_DIR=data, DATABASE_URL=db_url, GAD_HEARTBEAT_TIMEOUT=4))
    with session_scope(ctx.sessions) as s:
        token = users.create_token(s, users.create_user(s, "uploader", "researcher", PASSWORD))[1]
    n = 150_000  # big enough that the import takes seconds on this machine (the worker's kill lands inside)
    rows = b"".join(json.dumps({"prompt": f"question {i} " + "w" * 40, "response": "r" * 40}).encode() + b"\n"
                    for i in range(n))
    env, uploads, auth = studio_env(data, db_url, None), data / "uploads", {"Authorization": f"Bearer {token}"}

    def job_row():
        with ctx.sessions() as s:
            return s.get(Job, job_id)

    def counts():
        with ctx.sessions() as s:
            return (s.scalar(select(func.count()).select_from(Dataset)),
                    s.scalar(select(func.count()).select_from(Prompt)))

    server = ServerProcess(env, free_port(), tmp_path / "server.log").start()
    worker = None
    try:
        r = httpx.post(f"{server.url}/api/datasets", params={"wait": 0}, headers=auth,
                       files={"file": ("big.jsonl", rows)}, timeout=120)
        assert r.status_code == 202 and r.headers["Location"] == f"/api/jobs/{r.json()['id']}", r.text
        job_id = r.json()["id"]
        stored = uploads / f"job-{job_id}" / "upload.jsonl"
        assert stored.read_bytes() == rows                                    # stored whole, parsed by nobody
        server.kill9()
        server = ServerProcess(env, free_port(), tmp_path / "server.log").start()
        assert stored.exists() and [p.name for p in uploads.iterdir()] == [f"job-{job_id}"]  # kept for its job

        worker = Worker(env, tmp_path / "worker.log", queues="io").start()
        wait_for(lambda: (job_row().stats or {}).get("phase") in ("parse", "insert"), 120, "the import's progress",
                 interval=0.05)
        worker.kill()
        if job_row().status == "succeeded":
            raise AssertionError("the import ended before the kill: nothing was tested")
        assert counts() == (0, 0)                                            # no half dataset

        def interrupted() -> bool:
            with session_scope(ctx.sessions) as s:
                lifecycle.reconcile(s, heartbeat_timeout=4)
            return job_row().status == "interrupted"

        wait_for(interrupted, 60, "the dead worker's job marked interrupted")
        assert httpx.post(f"{server.url}/api/jobs/{job_id}/retry", headers=auth).status_code == 200
        worker = Worker(env, tmp_path / "worker.log", queues="io").start()
        wait_for(lambda: job_row().status in ("succeeded", "failed"), 180, "the retried import")
        job = job_row()
        assert job.status == "succeeded", job.error
        assert counts() == (1, n) and job.result["n_prompts"] == n
        assert not any(uploads.iterdir())                                   # the file went with its answer
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
        ctx.close()


def test_the_sweep_keeps_live_scratch_and_waiting_jobs_files_only(tmp_path):
    from app.context import make_context
    from app.db.session import session_scope
    from app.enums import JobKind, RunStatus
    from app.services.jobs import create_job
    from app.services.uploads import job_folder, scratch_dir, sweep_uploads
    from app.settings import Settings

    ctx = make_context(Settings(GAD_DATA_DIR=tmp_path / "data", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}"))
    root = tmp_path / "uploads"
    with session_scope(ctx.sessions) as s:
        waiting = create_job(s, JobKind.upload, {}).id
        ended = create_job(s, JobKind.upload, {})
        ended.status = RunStatus.succeeded
        ended = ended.id
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = root / f"pid{int(dead.stdout)}-abc"
    old_style = root / "tmpq1w2e3"                       # scratch of a studio from before the PID names
    for folder in (gone, old_style, job_folder(root, waiting), job_folder(root, ended), job_folder(root, 999)):
        folder.mkdir(parents=True)
        (folder / "upload.jsonl").write_text("{}\n")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        living = root / f"pid{alive.pid}-xyz"
        living.mkdir()
        with scratch_dir(root) as ours, ctx.sessions() as s:
            assert sweep_uploads(s, root) == 4
            assert sorted(p.name for p in root.iterdir()) == sorted([ours.name, living.name, f"job-{waiting}"])
    finally:
        alive.kill()
        alive.wait()
        ctx.close()
