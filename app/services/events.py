"""Change notices for live views: wait until a run or a job has moved, then let the caller redraw.

The worker writes progress from another process, so a change is seen through the database: a cheap
"version" (a handful of columns of one row, plus the run's checkpoint count and worker.log size) is
read every `interval` seconds on the server, and `wait_for_change` returns as soon as it differs from
the version the caller last drew, or after `timeout` with the same version (so the caller can refresh
relative times and notice a silent worker). The browser keeps one open stream instead of polling.

The reads run in a worker thread (`asyncio.to_thread`) so waiting holds no thread and no session."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Checkpoint, Job, Run

# How often the server looks at the row: fast enough to feel live, cheap enough for many open pages.
INTERVAL = 0.4

RUN, JOB, RUNS = "run", "job", "runs"  # RUNS: the whole list of runs (row_id is ignored)


def read_version(sessions: sessionmaker[Session], kind: str, row_id: int) -> tuple | None:
    """What a live view of the row shows, as a comparable tuple; None when the row is gone."""
    with sessions() as s:
        if kind == RUN:
            ckpts = select(func.count(Checkpoint.id)).where(Checkpoint.run_id == row_id).scalar_subquery()
            row = s.execute(select(Run.status, Run.stage, Run.step, Run.total_steps, Run.cancel_requested,
                                   Run.error, Run.output_dir, ckpts).where(Run.id == row_id)).first()
            if row is None:
                return None
            log = Path(row.output_dir) / "worker.log"
            # The worker log grows without a database write (stage messages, warnings): its size counts too.
            return (*row, log.stat().st_size if log.is_file() else 0)
        if kind == JOB:
            row = s.execute(select(Job.status, Job.done, Job.total, Job.cost, Job.error, Job.finished_at)
                            .where(Job.id == row_id)).first()
            return None if row is None else tuple(row)
        if kind == RUNS:  # a run added, one changing status or moving a step
            rows = s.execute(select(Run.status, func.count(Run.id), func.max(Run.id), func.sum(Run.step))
                             .group_by(Run.status).order_by(Run.status)).all()
            return tuple(tuple(r) for r in rows)
    raise ValueError(f"unknown kind {kind!r}: expected {RUN!r}, {JOB!r} or {RUNS!r}")


async def wait_for_change(sessions: sessionmaker[Session], kind: str, row_id: int, since: tuple | None,
                          timeout: float, interval: float = INTERVAL) -> tuple | None:
    """The row's version once it differs from `since` (at once when `since` is None), or the unchanged
    version after `timeout` seconds. Cancelling the awaiting task (a closed page) stops the wait."""
    deadline = time.monotonic() + timeout
    while True:
        version = await asyncio.to_thread(read_version, sessions, kind, row_id)
        if since is None or version != since or time.monotonic() >= deadline:
            return version
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
