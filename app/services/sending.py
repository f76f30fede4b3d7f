"""Which rows have been handed to the broker. A row is committed first and sent after; if the broker
is down at that moment the row stays queued with `sent_at` empty, and the workers' sweeper sends
it once the broker answers again (a duplicate is harmless: the claim runs a row once)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db.models import Job, Run, utcnow
from app.enums import JobKind, RunStatus


def _model(kind: str):
    return Run if kind == JobKind.train else Job


def mark_sent(session: Session, kind: str, row_id: int) -> None:
    model = _model(kind)
    session.execute(update(model).where(model.id == row_id).values(sent_at=utcnow()))


def unsent(session: Session, older_than: float = 5.0) -> list[tuple[str, int]]:
    """Queued rows never handed to the broker (older than `older_than` seconds, so a request that is
    sending one right now is left alone): [(kind, id)]."""
    cutoff = utcnow() - timedelta(seconds=older_than)
    runs = session.scalars(select(Run.id).where(Run.status == RunStatus.queued, Run.sent_at.is_(None),
                                                Run.created_at < cutoff))
    jobs = session.execute(select(Job.kind, Job.id).where(Job.status == RunStatus.queued, Job.sent_at.is_(None),
                                                          Job.created_at < cutoff))
    return [(JobKind.train, r) for r in runs] + [(k, j) for k, j in jobs]
