"""Two workers, one per queue, sharing one PostgreSQL and one Redis (the several-machines layout on
one machine): a training run goes to the `gpu` worker and a teacher collection to the `io` worker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
import redis

from app.db.models import Job, Run
from app.db.session import session_scope
from tests.conftest import REPO
from tests.studio.conftest import Worker, studio_env

pytestmark = pytest.mark.slow


class QueueWorker(Worker):
    """A real `gad-studio worker` serving the given queues only."""

    def __init__(self, env: dict, log, queues: str):
        super().__init__(env, log)
        self.queues = queues

    def start(self) -> QueueWorker:
        fh = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--queues", self.queues,
                                      "--loglevel", "WARNING"], env=self.env, cwd=REPO, stdout=fh, stderr=fh,
                                     start_new_session=True)
        return self

    @property
    def name(self) -> str:
        """What the worker writes into a row's `worker` column (worker/tasks.py: host:pid); `gad-studio
        worker` execs the Celery worker, whose solo pool runs tasks in that same process."""
        return f"{socket.gethostname()}:{self.proc.pid}"


def _own_redis_db(url: str) -> str:
    """Queue names are fixed (gpu, io), so a concurrent test session's workers on the same Redis
    database would take these tasks (and drop them as another studio's). Use a database of our own."""
    return url.rsplit("/", 1)[0] + f"/{10 + os.getpid() % 6}"


def _wait(predicate, timeout: float, what: str, workers: list[QueueWorker]):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for w in workers:
            assert w.proc.poll() is None, f"{w.queues} worker exited:\n{w.log.read_text()[-3000:]}"
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; logs:\n"
                         + "\n".join(w.log.read_text()[-2000:] for w in workers))


def test_each_queue_is_served_by_its_own_worker(tmp_path, pg_url, redis_url, tiny_model, pairs_file):
    from app.context import make_context
    from app.devserver import DevServer
    from app.services.datasets import import_dataset
    from app.services.endpoints import create_endpoint
    from app.services.jobs import create_collect_job
    from app.services.runs import submit_run
    from app.settings import Settings

    broker = _own_redis_db(redis_url)
    redis.Redis.from_url(broker).flushdb()
    data = tmp_path / "data"
    ctx = make_context(Settings(GAD_DATA_DIR=data, DATABASE_URL=pg_url, CELERY_BROKER_URL=broker))
    env = studio_env(data, pg_url, broker)
    workers = [QueueWorker(env, tmp_path / "io.log", "io").start(),
               QueueWorker(env, tmp_path / "gpu.log", "gpu").start()]
    io, gpu = workers
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(f'{{"prompt": "question {i}"}}\n' for i in range(4)))
    try:
        with DevServer() as srv:
            with session_scope(ctx.sessions) as s:
                teacher = create_endpoint(s, ctx.settings, name="teacher", base_url=srv.base_url, model="t",
                                          api_key="k")
                ds = import_dataset(s, prompts)
                job_id = create_collect_job(s, dataset_id=ds.id, endpoint_id=teacher.id).id
                run_id = submit_run(s, ctx.settings, {
                    "method": "gad", "student": str(tiny_model), "data": str(pairs_file), "batch_size": 2,
                    "group_size": 4, "max_new_tokens": 8, "max_prompt_length": 48, "warmup_steps": 2, "steps": 2,
                    "disc_only_steps": 1, "save_steps": 2}).id
            ctx.enqueue("collect", job_id)   # after the commit, as the services require
            ctx.enqueue("train", run_id)

            def done() -> bool:
                with ctx.sessions() as s:
                    return s.get(Job, job_id).status in ("succeeded", "failed") and \
                        s.get(Run, run_id).status in ("succeeded", "failed")
            _wait(done, 180, "the job and the run", workers)
            assert len(srv.requests()) >= 4  # the io worker really asked the teacher
        with ctx.sessions() as s:
            job, run = s.get(Job, job_id), s.get(Run, run_id)
            assert job.status == "succeeded", job.error
            assert run.status == "succeeded", run.error
            assert job.worker == io.name and run.worker == gpu.name
            assert job.result["ok"] == 4
    finally:
        for w in workers:
            w.stop()
        ctx.close()
