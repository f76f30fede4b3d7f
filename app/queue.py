"""The producer side of the job queue: task names, their queues, and `enqueue`.

`app/` never imports `worker/`: tasks are sent by name, and the worker registers the same names
(worker/tasks.py imports TASKS from here). Every message carries the studio's identity (a random
id stored in its database), so a worker attached to another database drops it instead of running
whatever row happens to have the same id there.

Enqueue only after the transaction that created the row has committed: a fast worker must find it.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.enums import JobKind, Queue
from app.settings import Settings


@dataclass(frozen=True)
class Task:
    name: str
    queue: Queue


TRAIN = Task("gad.train_run", Queue.gpu)
TASKS: dict[str, Task] = {
    JobKind.train: TRAIN,
    JobKind.collect: Task("gad.collect", Queue.io),
    JobKind.evaluate: Task("gad.llm.evaluate", Queue.gpu),
    JobKind.study: Task("gad.generate_study", Queue.gpu),
    JobKind.upload: Task("gad.import_upload", Queue.io),
}
TASK_ROUTES = {t.name: {"queue": t.queue.value} for t in TASKS.values()}


def make_celery(settings: Settings):
    """A Celery app configured for the studio (producer and worker share this configuration)."""
    from celery import Celery

    broker = settings.celery_broker
    if broker.startswith("sqla+"):
        # Embedded default: no server needed. Poll often; the transport's default is 1 s.
        from kombu.transport import sqlalchemy as kombu_sqla

        kombu_sqla.Transport.polling_interval = 0.2
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = Celery("gad_studio", broker=broker)
    app.conf.update(
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_ignore_result=True, task_routes=TASK_ROUTES, task_default_queue=Queue.io.value,
        # Only Redis takes a visibility timeout (passing it to the SQLAlchemy transport breaks it).
        broker_transport_options={"visibility_timeout": settings.visibility_timeout}
        if broker.startswith(("redis", "rediss")) else {},
        broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
        worker_send_task_events=False, task_serializer="json", accept_content=["json"],
    )
    return app


class Producer:
    """Sends tasks by name. One per process (the Celery app holds a connection pool)."""

    def __init__(self, settings: Settings, studio_id: str):
        self.settings, self.studio_id = settings, studio_id
        self._app = None

    @property
    def app(self):
        if self._app is None:
            self._app = make_celery(self.settings)
        return self._app

    def send(self, kind: str, row_id: int) -> None:
        task = TASKS[kind]
        # A short retry: a request should not hang for long on a broker that is down.
        self.app.send_task(task.name, args=[row_id], kwargs={"studio_id": self.studio_id}, queue=task.queue.value,
                           retry=True, retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5,
                                                     "interval_max": 1.0})

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
