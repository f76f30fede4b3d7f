"""`gad-studio up` driven as a user would: one command, a ready demo, a demo run launched through the
API that finishes, Ctrl-C (SIGINT) that leaves no process behind, and a second start that keeps
everything from the first. Also: `up` killed outright takes its worker with it, and a second `up` on a
folder that is still served is refused with the PID in the way."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from app.pidlock import UP_LOCK, WORKER_LOCK, PidLock
from tests.api.conftest import free_port, wait_for

pytestmark = pytest.mark.slow


class Up:
    def __init__(self, tmp_path, port: int, *args: str):
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL",
                                                                  "GAD_ADMIN_PASSWORD")}
        env.update(GAD_DATA_DIR=str(tmp_path / "data"), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        self.log = (tmp_path / f"up-{port}.log").open("w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "up", "--port", str(port), *args], cwd=tmp_path,
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def wait_ready(self) -> str:
        wait_for(lambda: "Ctrl-C stops" in self.output() or self.proc.poll() is not None, timeout=240,
                 what="the banner")
        assert self.proc.poll() is None, self.output()

        def healthy():
            try:
                return httpx.get(f"{self.url}/health", timeout=2).json()["status"] == "ok"
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=60, what="/health")
        return self.output()

    def tree(self) -> list[int]:
        return [self.proc.pid] + [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]

    def stop(self) -> tuple[int, list[int]]:
        """SIGINT, as Ctrl-C sends; returns the exit code and the pids of the whole tree before it."""
        tree = self.tree()
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=60)
        return code, tree


def alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def gone(tree: list[int], up: Up, timeout: float) -> None:
    """Every process of `tree` ends within `timeout` seconds (polled; zombies count as ended)."""
    try:
        wait_for(lambda: alive(tree) == [], timeout=timeout, interval=0.1, what="the process tree to end")
    except AssertionError:
        raise AssertionError(f"left running {timeout:.0f} s later: {alive(tree)}\n{up.output()}") from None


def test_up_opens_on_a_ready_demo_runs_it_and_stops_cleanly(tmp_path):
    first = Up(tmp_path, free_port())
    try:
        banner = first.wait_ready()
        found = re.search(r"first admin: user 'admin', password (\S+)", banner)
        assert found, f"the first start must print the new admin's password:\n{banner}"
        password = found.group(1)
        with httpx.Client(base_url=first.url, timeout=60) as c:
            login = c.post("/api/auth/login", json={"username": "admin", "password": password})
            assert login.status_code == 200, login.text
            csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
            datasets = c.get("/api/datasets").json()
            assert [(d["name"], d["n_prompts"], d["with_response"]) for d in datasets] == \
                [("Alpaca-GPT4 demo (128 prompts)", 128, 128)]
            demo_model = str(tmp_path / "data" / "models" / "tiny-demo")
            assert any(m["id"] == "base/tiny-demo" for m in c.get("/v1/models").json()["data"])
            t0 = time.time()
            run = c.post("/api/runs", headers=csrf, json={"dataset_id": datasets[0]["id"], "config": {
                "student": demo_model, "method": "gad", "batch_size": 4, "group_size": 2, "max_new_tokens": 8,
                "max_prompt_length": 64, "warmup_steps": 2, "steps": 2, "disc_only_steps": 1, "save_steps": 2}})
            assert run.status_code == 201, run.text
            done = wait_for(lambda: (r := c.get(f"/api/runs/{run.json()['id']}").json())["status"]
                            in ("succeeded", "failed") and r, timeout=240, what="the demo run")
            assert done["status"] == "succeeded", done["error"]
            print(f"demo run finished {time.time() - t0:.1f} s after launch")
        code, tree = first.stop()
        assert code == 0 and len(tree) >= 2, first.output()           # the server and its worker
        gone(tree, first, timeout=10)
        assert "stopped." in first.output()
    finally:
        if first.proc.poll() is None:
            first.proc.kill()

    second = Up(tmp_path, free_port())
    try:
        banner = second.wait_ready()
        assert "GAD Studio" in banner and "first admin" not in banner and password not in banner, banner
        with httpx.Client(base_url=second.url, timeout=60) as c:
            c.post("/api/auth/login", json={"username": "admin", "password": password}).raise_for_status()
            assert len(c.get("/api/datasets").json()) == 1                 # the demo was kept, not doubled
            assert c.get("/api/runs").json()["items"][0]["status"] == "succeeded"
        code, tree = second.stop()
        assert code == 0
        gone(tree, second, timeout=10)
    finally:
        if second.proc.poll() is None:
            second.proc.kill()


def worker_ready(data) -> bool:
    log = data / "logs" / "worker.log"
    return log.is_file() and " ready." in log.read_text(errors="replace")


def test_sigkill_of_up_takes_its_worker_and_a_second_up_is_refused_while_one_lives(tmp_path):
    data = tmp_path / "data"
    first, tree = Up(tmp_path, free_port(), "--no-demo"), []
    try:
        first.wait_ready()
        wait_for(lambda: worker_ready(data), timeout=120, what="the worker")
        tree = first.tree()
        assert len(tree) >= 2, first.output()                            # `up` (the web server) and its worker

        second = Up(tmp_path, free_port(), "--no-demo")
        assert second.proc.wait(timeout=120) == 4, second.output()       # Conflict's exit code
        assert f"PID {first.proc.pid}" in second.output() and "already running" in second.output()

        first.proc.kill()                                                # SIGKILL: no chance to stop the worker
        first.proc.wait(timeout=10)
        gone(tree, first, timeout=10)
    finally:  # a failed check must not leave an orphan behind for the rest of the suite
        for pid in alive(tree + [first.proc.pid]):
            os.kill(pid, signal.SIGKILL)

    # The killed processes left their PID files behind: dead holders must not block the next start.
    assert (data / UP_LOCK).is_file() and (data / WORKER_LOCK).is_file()
    third = Up(tmp_path, free_port(), "--no-demo")
    try:
        third.wait_ready()
        code, tree = third.stop()
        assert code == 0
        gone(tree, third, timeout=10)
    finally:
        if third.proc.poll() is None:
            third.proc.kill()


def test_up_refuses_while_a_worker_of_an_earlier_up_still_holds_the_folder(tmp_path):
    # An orphaned worker holds worker.pid; here this test process plays it.
    held = PidLock(tmp_path / "data" / WORKER_LOCK).acquire()
    try:
        refused = Up(tmp_path, free_port(), "--no-demo")
        assert refused.proc.wait(timeout=120) == 4, refused.output()
        assert "worker of an earlier `gad-studio up`" in refused.output() and f"PID {os.getpid()}" in refused.output()
    finally:
        held.release()
