"""The Celery tasks: each checks the message belongs to this studio and hands the row's id to one
service, which claims the row (idempotent on redelivery), does the work and writes the final state
(app/services/lifecycle.py: the life every run and job shares). Names and queues come from app/queue.py."""

from __future__ import annotations

import logging
import os
import socket

from celery import shared_task

from app.enums import JobKind
from app.queue import TASKS, TRAIN
from app.services import jobs as job_service
from app.services import training, uploads
from worker.celery_app import studio

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
    ctx = studio(self.app)
    if not _ours(ctx, studio_id, f"run {run_id}"):
        return "foreign"
    return training.train_run(ctx, run_id, worker_name())


@shared_task(bind=True, name=TASKS[JobKind.collect].name, acks_late=True)
def collect(self, job_id: int, studio_id: str | None = None) -> str:
    return _job(self, job_id, studio_id, job_service.run_collect)


@shared_task(bind=True, name=TASKS[JobKind.evaluate].name, acks_late=True)
def evaluate(self, job_id: int, studio_id: str | None = None) -> str:
    return _job(self, job_id, studio_id, job_service.run_evaluation)


@shared_task(bind=True, name=TASKS[JobKind.study].name, acks_late=True)
def generate_study(self, job_id: int, studio_id: str | None = None) -> str:
    return _job(self, job_id, studio_id, job_service.run_study_generation)


@shared_task(bind=True, name=TASKS[JobKind.upload].name, acks_late=True)
def import_upload(self, job_id: int, studio_id: str | None = None) -> str:
    return _job(self, job_id, studio_id, uploads.run_upload)


def _job(task, job_id: int, studio_id: str | None, body) -> str:
    ctx = studio(task.app)
    if not _ours(ctx, studio_id, f"job {job_id}"):
        return "foreign"
    return job_service.carry_out_job(ctx, job_id, worker_name(), body)
