"""The worker's Celery app: the producer's configuration (app/queue.py) plus the task bodies.

Long tasks: acks_late + prefetch 1, so a task is acknowledged only when done and a worker holds
one at a time; a visibility timeout (Redis) longer than any job, so Redis does not hand a running
job to a second worker. Crash recovery does not rely on the broker: heartbeats in the database
and a reconciler mark dead runs interrupted, and resuming continues from the last checkpoint.
"""

from __future__ import annotations

from celery import Celery

from app.context import StudioContext, make_context
from app.queue import make_celery as make_producer_app
from app.settings import Settings


def make_celery(settings: Settings, context: StudioContext | None = None) -> Celery:
    app = make_producer_app(settings)
    app.conf.include = ["worker.tasks"]
    app.studio_settings = settings
    app._studio_context = context
    return app


def studio(app: Celery) -> StudioContext:
    """The worker process's context (engine, sessions), created on first use in that process."""
    if app._studio_context is None:
        app._studio_context = make_context(app.studio_settings)
    return app._studio_context
