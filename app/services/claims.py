"""Taking a queued row for one worker attempt, exactly once, with a single conditional UPDATE.

Runs and jobs share this: a row is free when queued, or when running but silent (its worker's
heartbeat older than `stale_after`). The returned token identifies the attempt that holds it. Like
every service it flushes; the worker commits at once, so the claim is visible to every other worker.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.db.models import utcnow


def claim_row(session: Session, model, row_id: int, worker: str, stale_after: float, **values) -> str | None:
    token, now = uuid.uuid4().hex, utcnow()
    free = (model.status == "queued") | ((model.status == "running") &
                                         (model.heartbeat_at < now - timedelta(seconds=stale_after)))
    res = session.execute(update(model).where(model.id == row_id, free)
                          .values(status="running", claim=token, worker=worker, heartbeat_at=now, **values)
                          .execution_options(synchronize_session=False))
    session.flush()
    return token if res.rowcount == 1 else None
