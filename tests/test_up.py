"""`gad-studio up` driven as a user would: one command, a ready demo, a demo run launched through the
API that finishes, Ctrl-C (SIGINT) that leaves no process behind, and a second start that keeps
everything from the first."""

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

from tests.api.conftest import free_port, wait_for

pytestmark = pytest.mark.slow


class Up:
    def __init__(self, tmp_path, port: int):
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL",
                                                                  "GAD_ADMIN_PASSWORD")}
        env.update(GAD_DATA_DIR=str(tmp_path / "data"), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        self.log = (tmp_path / f"up-{port}.log").open("w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "up", "--port", str(port)], cwd=tmp_path,
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

    def stop(self) -> tuple[int, list[int]]:
        """SIGINT, as Ctrl-C sends; returns the exit code and the pids of the whole tree before it."""
        tree = [self.proc.pid] + [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
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


def test_up_opens_on_a_ready_demo_runs_it_and_stops_cleanly(tmp_path):
    first = Up(tmp_path, free_port())
    try:
        banner = first.wait_ready()
        password = re.search(r"user 'admin', password (\S+)", banner).group(1)
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
        time.sleep(0.5)
        assert alive(tree) == [], f"left running: {alive(tree)}\n{first.output()}"
        assert "stopped." in first.output()
    finally:
        if first.proc.poll() is None:
            first.proc.kill()

    second = Up(tmp_path, free_port())
    try:
        banner = second.wait_ready()
        assert "password" not in banner.split("GAD Studio")[1].split("demo:")[0] or "first admin" not in banner
        with httpx.Client(base_url=second.url, timeout=60) as c:
            c.post("/api/auth/login", json={"username": "admin", "password": password}).raise_for_status()
            assert len(c.get("/api/datasets").json()) == 1                 # the demo was kept, not doubled
            assert c.get("/api/runs").json()["items"][0]["status"] == "succeeded"
        code, tree = second.stop()
        assert code == 0 and alive(tree) == []
    finally:
        if second.proc.poll() is None:
            second.proc.kill()
