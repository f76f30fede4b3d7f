"""kill -9 of the web server (a real `gad-studio serve` process) in the middle of an upload: no half
dataset in the database, and the next start sweeps the scratch folder the upload left in
data/uploads/."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
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


def test_kill_9_during_an_upload_leaves_no_half_dataset_and_the_restart_sweeps_scratch(tmp_path):
    from app.context import make_context
    from app.db.models import Dataset, Prompt
    from app.db.session import session_scope
    from app.services import users
    from app.settings import Settings

    data = tmp_path / "data"
    db_url = f"sqlite:///{data / 'studio.db'}"
    ctx = make_context(Settings(GAD_DATA_DIR=data, DATABASE_URL=db_url))
    with session_scope(ctx.sessions) as s:
        token = users.create_token(s, users.create_user(s, "uploader", "researcher", PASSWORD))[1]
    # Big enough that parsing and inserting take a while on this machine (the kill lands inside).
    rows = b"".join(json.dumps({"prompt": f"question {i} " + "w" * 40, "response": "r" * 40}).encode() + b"\n"
                    for i in range(150_000))
    env = studio_env(data, db_url, None)
    uploads = data / "uploads"
    server = ServerProcess(env, free_port(), tmp_path / "server.log").start()
    try:
        def send():
            try:
                httpx.post(f"{server.url}/api/datasets", headers={"Authorization": f"Bearer {token}"},
                           files={"file": ("big.jsonl", rows)}, timeout=120)
            except httpx.HTTPError:
                pass  # the server dies under it

        client = threading.Thread(target=send, daemon=True)
        client.start()
        wait_for(lambda: any(uploads.glob("*/upload.jsonl")), 60, "the upload's scratch file", interval=0.02)
        server.kill9()
        client.join(timeout=30)
        leftovers = list(uploads.iterdir())
        assert leftovers, "the kill came after the upload finished: nothing was tested"

        with ctx.sessions() as s:
            assert s.scalar(select(func.count()).select_from(Dataset)) == 0
            assert s.scalar(select(func.count()).select_from(Prompt)) == 0

        server = ServerProcess(env, free_port(), tmp_path / "server.log").start()
        assert not any(p.exists() for p in leftovers), f"not swept at start: {leftovers}"
        with ctx.sessions() as s:
            assert s.scalar(select(func.count()).select_from(Dataset)) == 0
        r = httpx.post(f"{server.url}/api/datasets", headers={"Authorization": f"Bearer {token}"},
                       files={"file": ("small.jsonl", rows[:rows.index(b"\n", 10_000) + 1])}, timeout=60)
        assert r.status_code == 201, r.text
    finally:
        server.stop()
        ctx.close()


def test_the_sweep_removes_only_the_scratch_of_processes_that_are_gone(tmp_path):
    from app.services.datasets import scratch_dir, sweep_scratch

    root = tmp_path / "uploads"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = root / f"pid{int(dead.stdout)}-abc"
    old_style = root / "tmpq1w2e3"                       # scratch of a studio from before the PID names
    for folder in (gone, old_style):
        folder.mkdir(parents=True)
        (folder / "upload.jsonl").write_text("{}\n")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        living = root / f"pid{alive.pid}-xyz"
        living.mkdir()
        with scratch_dir(root) as ours:
            assert sweep_scratch(root) == 2
            assert ours.exists() and living.exists() and not gone.exists() and not old_style.exists()
    finally:
        alive.kill()
        alive.wait()
