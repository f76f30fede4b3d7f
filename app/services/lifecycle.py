"""The one life of a run and of a job: claim, heartbeat, finish, cancel, queue again, reconcile.

    queued -> running -> succeeded | failed | cancelled
    running -(worker silent > heartbeat timeout)-> interrupted -(resume / retry)-> queued

Runs and jobs are rows with the same columns for this (status, claim, worker, heartbeat_at, error,
finished_at, eta_seconds, sent_at), so every transition is written once here, as one conditional
UPDATE: a task delivered twice runs once, and a cancel racing a claim cannot overwrite it. Which
statuses allow what is RunStatus's to say (app/enums.py). A worker runs a row through `carry_out`:
claim, heartbeat thread, body, finish succeeded or failed, each step logged. Like every service the
transitions flush; the exceptions are `carry_out` and `reconcile_now_and_then`, which open and
commit their own sessions because their callers (a worker task, a poller) hold none.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Job, Run, utcnow
from app.db.session import session_scope
from app.enums import RunStatus
from app.errors import Conflict
from app.services.lookup import one

log = logging.getLogger("gad_studio.lifecycle")

SILENT = "worker stopped sending heartbeats"  # the start of a reconciled row's error


def _update(session: Session, model, row_id: int, *where, **values) -> int:
    res = session.execute(update(model).where(model.id == row_id, *where).values(**values)
                          .execution_options(synchronize_session=False))
    return res.rowcount


def claim_row(session: Session, model, row_id: int, worker: str, stale_after: float, **values) -> str | None:
    """Take a queued row (or a running one whose worker's heartbeat is older than `stale_after`) for
    one attempt. Returns the attempt's token, or None when the row is not free."""
    token, now = uuid.uuid4().hex, utcnow()
    if hasattr(model, "attempts"):  # runs count their attempts (the run page shows it)
        values.setdefault("attempts", model.attempts + 1)
    free = (model.status == RunStatus.queued) | ((model.status == RunStatus.running) &
                                                 (model.heartbeat_at < now - timedelta(seconds=stale_after)))
    taken = _update(session, model, row_id, free, status=RunStatus.running, claim=token, worker=worker,
                    heartbeat_at=now, **values)
    session.flush()
    return token if taken == 1 else None


def beat(session: Session, model, row_id: int, claim: str) -> bool:
    """True while this attempt still holds the row (a resumed or retried row belongs to the next one)."""
    return _update(session, model, row_id, model.claim == claim, model.status == RunStatus.running,
                   heartbeat_at=utcnow()) == 1


def finish_row(session: Session, model, row_id: int, claim: str, status: RunStatus, **values) -> bool:
    """The attempt's outcome. It lands while this attempt holds the row, also when a reconcile marked
    it interrupted meanwhile (the worker was slow, not dead); not after a resume or a cancel."""
    return _update(session, model, row_id, model.claim == claim,
                   model.status.in_([RunStatus.running, RunStatus.interrupted]),
                   status=status, finished_at=utcnow(), eta_seconds=None, **values) == 1


def cancel_row(session: Session, model, row_id: int, what: str) -> None:
    """Queued or interrupted: cancelled at once. Running: a run is asked to stop after its step (it
    keeps a checkpoint); a job has no steps and finishes. Raises Conflict when nothing applies."""
    if _update(session, model, row_id, model.status.in_(list(RunStatus.stops_at_once())),
               status=RunStatus.cancelled, finished_at=utcnow(), eta_seconds=None):
        return
    if hasattr(model, "cancel_requested") and _update(session, model, row_id, model.status == RunStatus.running,
                                                      cancel_requested=True):
        return
    status = session.scalar(select(model.status).where(model.id == row_id))
    can = RunStatus.cancellable() if hasattr(model, "cancel_requested") else RunStatus.stops_at_once()
    raise Conflict(f"{what} is already {status}; only {_names(can)} ones can be cancelled")


def requeue_row(session: Session, model, row_id: int, what: str) -> None:
    """Interrupted, failed or cancelled: queued again for a new attempt (a run resumes from its last
    checkpoint; a job's answers already paid for come from the cache). The old claim is dropped, so
    an old attempt still alive sees it lost the row."""
    extra = {"cancel_requested": False} if hasattr(model, "cancel_requested") else {}
    if not _update(session, model, row_id, model.status.in_(list(RunStatus.resumable())),
                   status=RunStatus.queued, claim=None, error=None, finished_at=None, eta_seconds=None,
                   sent_at=None, **extra):  # sent_at: the sweeper sends it if the broker misses it
        status = session.scalar(select(model.status).where(model.id == row_id))
        raise Conflict(f"{what} is {status}; only {_names(RunStatus.resumable())} ones can be queued again")


def _names(statuses) -> str:
    return ", ".join(sorted(statuses))


def reconcile_rows(session: Session, model, heartbeat_timeout: float, then: str) -> list[int]:
    """Mark running rows whose worker went silent as interrupted. Returns their ids."""
    stale = utcnow() - timedelta(seconds=heartbeat_timeout)
    silent = (model.status == RunStatus.running) & (model.heartbeat_at < stale)
    ids = list(session.scalars(select(model.id).where(silent)))
    if ids:
        session.execute(update(model).where(model.id.in_(ids), silent)
                        .values(status=RunStatus.interrupted, eta_seconds=None, error=f"{SILENT}; {then}")
                        .execution_options(synchronize_session=False))
    return ids


def reconcile(session: Session, heartbeat_timeout: float) -> dict[str, list[int]]:
    """Runs and jobs of dead workers, marked interrupted: {"runs": ids, "jobs": ids}."""
    return {"runs": reconcile_rows(session, Run, heartbeat_timeout,
                                   "resume to continue from the last checkpoint"),
            "jobs": reconcile_rows(session, Job, heartbeat_timeout, "retry to continue (answers are cached)")}


_throttle = threading.Lock()


def reconcile_now_and_then(ctx, *, every: float | None = None) -> dict[str, list[int]]:
    """The one entry point every caller uses (workers, API, dashboard, CLI): reconcile runs and jobs in a
    session of its own and commit, at most once per `every` seconds per process (default: half the
    heartbeat timeout), so a page load or a poll is not a database write. Returns what it marked."""
    every = ctx.settings.heartbeat_timeout / 2 if every is None else every
    with _throttle:
        now = time.monotonic()
        if now - getattr(ctx, "_last_reconcile", float("-inf")) < every:
            return {"runs": [], "jobs": []}
        ctx._last_reconcile = now
    with session_scope(ctx.sessions) as s:
        marked = reconcile(s, ctx.settings.heartbeat_timeout)
    for kind, ids in marked.items():
        for row_id in ids:
            log.warning("%s %s: worker lost, marked interrupted", kind[:-1], row_id)
    return marked


class Heartbeat:
    """Context manager: a daemon thread that calls `beat(session)` every `interval` seconds while a
    task blocks, until `beat` returns False (the row finished or was taken over). A database hiccup is
    logged and the next beat tried: this thread dying would make a healthy job look dead."""

    def __init__(self, sessions: sessionmaker[Session], beat: Callable[[Session], bool], interval: float, label: str):
        self.sessions, self.beat, self.interval, self.label = sessions, beat, interval, label
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{label}", daemon=True)

    def _loop(self):
        while not self._stop.wait(self.interval):
            try:
                with session_scope(self.sessions) as s:
                    if self.beat(s) is False:
                        return
            except OperationalError as err:  # a locked or restarting database: the next beat may pass
                log.warning("%s heartbeat: %s", self.label, err)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)


@dataclass
class Outcome:
    """What an attempt's body ended with: the final status, and more columns to write with it."""
    status: RunStatus = RunStatus.succeeded
    values: dict = field(default_factory=dict)


def carry_out(ctx, model, row_id: int, worker: str, body: Callable[[str], Outcome], *,
              say: Callable[[str], None] | None = None, **claim_values) -> str:
    """One worker attempt on a row, the same for runs and jobs: claim it (or return "skipped": a
    duplicate delivery, or it runs elsewhere, finished or was cancelled), keep its heartbeat while
    `body(claim)` works, write the outcome, and say each step (`say`: the run's log, else the logger).
    A body that raises marks the row failed with the error, and the error propagates."""
    label = f"{model.__tablename__[:-1]} {row_id}"
    say = say or (lambda text: log.info("%s: %s", label, text))
    with session_scope(ctx.sessions) as s:
        claim = claim_row(s, model, row_id, worker, ctx.settings.heartbeat_timeout, **claim_values)
    if claim is None:
        return "skipped"
    say(f"attempt {claim[:8]} on {worker}")
    try:
        with Heartbeat(ctx.sessions, lambda s: beat(s, model, row_id, claim), ctx.settings.heartbeat_seconds, label):
            outcome = body(claim)
    except Exception as err:
        say(f"failed: {type(err).__name__}: {err}\n{traceback.format_exc(limit=8)}")
        with session_scope(ctx.sessions) as s:
            finish_row(s, model, row_id, claim, RunStatus.failed, error=f"{type(err).__name__}: {err}")
        raise
    with session_scope(ctx.sessions) as s:
        finish_row(s, model, row_id, claim, outcome.status, **{"error": None, **outcome.values})
    say(str(outcome.status))
    return str(outcome.status)


def cancel(session: Session, model, row_id: int, what: str):
    """cancel_row on `what` #row_id (404 if there is none); returns the row as it is now."""
    row = one(session, model, row_id, what)
    cancel_row(session, model, row_id, f"{what} {row_id}")
    session.refresh(row)
    return row


def requeue(session: Session, model, row_id: int, what: str):
    """requeue_row on `what` #row_id (404 if there is none); returns the row as it is now."""
    row = one(session, model, row_id, what)
    requeue_row(session, model, row_id, f"{what} {row_id}")
    session.refresh(row)
    return row
