"""Task bodies stay short: load the row by id, claim it (idempotent on redelivery), call gad with a
database-backed progress, write the final state. Errors propagate after the row is marked failed."""

from __future__ import annotations

import os
import socket
import traceback

from celery import shared_task

from app.db.models import Run
from app.db.session import session_scope
from app.services import jobs as job_service
from app.services import runs as run_service
from app.services.progress import DbProgress, Heartbeat
from worker.celery_app import studio


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@shared_task(bind=True, name="gad.train_run", acks_late=True)
def train_run(self, run_id: int) -> str:
    from gad.config import build_config
    from gad.pipeline import list_checkpoints, run as run_pipeline

    ctx = studio(self.app)
    with ctx.sessions() as s:
        claim = run_service.claim_run(s, run_id, worker_name(), ctx.settings.heartbeat_timeout)
    if claim is None:
        return "skipped"  # duplicate delivery, already running elsewhere, finished or cancelled
    try:
        with ctx.sessions() as s:
            cfg = build_config(s.get(Run, run_id).config, source=f"run {run_id}")
        done = list_checkpoints(cfg.output_dir)
        with ctx.sessions() as s:
            run_service.forget_after(s, run_id, done[-1][0] if done else 0)
        with Heartbeat(ctx.sessions, run_id, claim, ctx.settings.heartbeat_seconds):
            result = run_pipeline(cfg, DbProgress(ctx.sessions, run_id, claim))
        with ctx.sessions() as s:
            run_service.finish_run(s, run_id, claim, result.status)
        return result.status
    except Exception as err:
        with ctx.sessions() as s:
            run_service.finish_run(s, run_id, claim, "failed", f"{type(err).__name__}: {err}\n"
                                                               f"{traceback.format_exc(limit=5)}")
        raise


@shared_task(bind=True, name="gad.collect", acks_late=True)
def collect(self, job_id: int) -> str:
    return _job(self, job_id, job_service.run_collect)


@shared_task(bind=True, name="gad.evaluate", acks_late=True)
def evaluate(self, job_id: int) -> str:
    return _job(self, job_id, job_service.run_evaluation)


@shared_task(bind=True, name="gad.generate_study", acks_late=True)
def generate_study(self, job_id: int) -> str:
    return _job(self, job_id, job_service.run_study_generation)


def _job(task, job_id: int, body) -> str:
    ctx = studio(task.app)
    with ctx.sessions() as s:
        claim = job_service.claim_job(s, job_id, worker_name(), ctx.settings.heartbeat_timeout)
    if claim is None:
        return "skipped"
    try:
        result = body(ctx, job_id, claim)
        with session_scope(ctx.sessions) as s:
            job_service.finish_job(s, job_id, claim, "succeeded", result=result)
        return "succeeded"
    except Exception as err:
        with session_scope(ctx.sessions) as s:
            job_service.finish_job(s, job_id, claim, "failed", error=f"{type(err).__name__}: {err}")
        raise
