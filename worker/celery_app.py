"""The Celery app, built by a factory from Settings.

Queues: `gpu` (training, generation for studies and evaluation) and `io` (teacher collection).
Long tasks: acks_late + prefetch 1, so a task is acknowledged only when done and a worker holds
one at a time; a visibility timeout (Redis) longer than any job, so Redis does not hand a running
job to a second worker. Crash recovery does not rely on the broker: heartbeats in the database
and a reconciler mark dead runs interrupted, and resuming continues from the last checkpoint.
"""

from __future__ import annotations

from celery import Celery

from app.context import StudioContext, make_context
from app.settings import Settings

TASK_ROUTES = {"gad.train_run": {"queue": "gpu"}, "gad.generate_study": {"queue": "gpu"},
               "gad.evaluate": {"queue": "gpu"}, "gad.collect": {"queue": "io"}}


def make_celery(settings: Settings, context: StudioContext | None = None) -> Celery:
    broker = settings.celery_broker
    if broker.startswith("sqla+"):
        # Embedded default: no server needed. Poll often; the transport's default is 1 s.
        from kombu.transport import sqlalchemy as kombu_sqla

        kombu_sqla.Transport.polling_interval = 0.2
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = Celery("gad_studio", broker=broker, include=["worker.tasks"])
    app.conf.update(
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_ignore_result=True, task_routes=TASK_ROUTES, task_default_queue="io",
        # Only Redis takes a visibility timeout (passing it to the SQLAlchemy transport breaks it).
        broker_transport_options={"visibility_timeout": settings.visibility_timeout}
        if broker.startswith(("redis", "rediss")) else {},
        broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
        worker_send_task_events=False, task_serializer="json", accept_content=["json"],
    )
    app.studio_settings = settings
    app._studio_context = context
    return app


def studio(app: Celery) -> StudioContext:
    """The worker process's context (engine, sessions), created on first use in that process."""
    if app._studio_context is None:
        app._studio_context = make_context(app.studio_settings)
    return app._studio_context
