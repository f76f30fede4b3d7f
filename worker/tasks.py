"""Task bodies stay short: check the message belongs to this studio, claim the row by id
(idempotent on redelivery), call one service with a database-backed progress, write the final
state. Errors propagate after the row is marked failed. Names and queues come from app/queue.py."""

from __future__ import annotations

import logging
import os
import socket
import traceback
from pathlib import Path

from celery import shared_task

from app.db.models import Run
from app.db.session import session_scope
from app.enums import JobKind, RunStatus
from app.queue import TASKS, TRAIN
from app.services import jobs as job_service
from app.services import runs as run_service
from app.services.progress import DbProgress, RunLog, run_heartbeat
from worker.celery_app import studio
from worker.group_run import run_group


log = logging.getLogger("gad_studio.worker")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _ours(ctx, studio_id: str | None, what: str) -> bool:
    """A message queued by another studio database (same broker) must not touch our rows."""
    if studio_id is not None and studio_id != ctx.studio_id:
        log.warning("dropping %s: queued by studio %s, this worker serves %s", what, studio_id[:8], ctx.studio_id[:8])
        return False
    return True


@shared_task(bind=True, name=TRAIN.name, acks_late=True)
def train_run(self, run_id: int, studio_id: str | None = None) -> str:
    from gad.config import build_config
    from gad.pipeline import list_checkpoints, run as run_pipeline

    ctx = studio(self.app)
    if not _ours(ctx, studio_id, f"run {run_id}"):
        return "foreign"
    with session_scope(ctx.sessions) as s:
        claim = run_service.claim_run(s, run_id, worker_name(), ctx.settings.heartbeat_timeout)
    if claim is None:
        return "skipped"  # duplicate delivery, already running elsewhere, finished or cancelled
    with ctx.sessions() as s:
        out_dir = Path(s.get(Run, run_id).output_dir)
    log = RunLog(out_dir / "worker.log")
    log.write(f"attempt {claim[:8]} on {worker_name()}")
    try:
        with ctx.sessions() as s:
            cfg = build_config(s.get(Run, run_id).config, source=f"run {run_id}")
        done = list_checkpoints(cfg.output_dir)
        with session_scope(ctx.sessions) as s:
            run_service.forget_after(s, run_id, done[-1][0] if done else 0)
        if done:
            log.write(f"resuming from checkpoint step {done[-1][0]}")
        progress = DbProgress(ctx.sessions, run_id, claim, log=log)
        processes = ctx.settings.run_processes()
        with run_heartbeat(ctx.sessions, run_id, claim, ctx.settings.heartbeat_seconds):
            if processes > 1:  # a group of processes (accelerate launch), followed through the run folder
                status = run_group(cfg, progress, log, processes=processes, strategy=ctx.settings.launch_strategy,
                                   cpu=ctx.settings.launch_cpu, after_step=done[-1][0] if done else 0)
            else:
                result = run_pipeline(cfg, progress)
                status = result.status
                for w in result.warnings:
                    log.write(f"warning: {w}")
        with session_scope(ctx.sessions) as s:
            run_service.finish_run(s, run_id, claim, RunStatus(status))
        log.write(f"{status}")
        return status
    except Exception as err:
        log.write(f"failed: {type(err).__name__}: {err}\n{traceback.format_exc(limit=8)}")
        with session_scope(ctx.sessions) as s:
            run_service.finish_run(s, run_id, claim, RunStatus.failed, f"{type(err).__name__}: {err}")
        raise
    finally:
        from gad.distributed import shutdown

        shutdown(barrier=False)


@shared_task(bind=True, name=TASKS[JobKind.collect].name, acks_late=True)
def collect(self, job_id: int, studio_id: str | None = None) -> str:
    return _job(self, job_id, studio_id, job_service.run_collect)


@shared_task(bind=True, name=TASKS[JobKind.evaluate].name, acks_late=True)
def evaluate(self, job_id: int, studio_id: str | None = None) -> str:
    return _job(self, job_id, studio_id, job_service.run_evaluation)


@shared_task(bind=True, name=TASKS[JobKind.study].name, acks_late=True)
def generate_study(self, job_id: int, studio_id: str | None = None) -> str:
    return _job(self, job_id, studio_id, job_service.run_study_generation)


def _job(task, job_id: int, studio_id: str | None, body) -> str:
    ctx = studio(task.app)
    if not _ours(ctx, studio_id, f"job {job_id}"):
        return "foreign"
    with session_scope(ctx.sessions) as s:
        claim = job_service.claim_job(s, job_id, worker_name(), ctx.settings.heartbeat_timeout)
    if claim is None:
        return "skipped"
    try:
        with job_service.job_heartbeat(ctx.sessions, job_id, claim, ctx.settings.heartbeat_seconds):
            result = body(ctx, job_id, claim)
        with session_scope(ctx.sessions) as s:
            job_service.finish_job(s, job_id, claim, RunStatus.succeeded, result=result)
        return "succeeded"
    except Exception as err:
        with session_scope(ctx.sessions) as s:
            job_service.finish_job(s, job_id, claim, RunStatus.failed, error=f"{type(err).__name__}: {err}")
        raise
