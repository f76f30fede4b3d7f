"""gad's ResponseStore on the studio's database (the teacher_responses table): the response cache, the
journal of requests in flight and the cost ledger, shared by collections, evaluations and study judges."""

from __future__ import annotations

import time

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.db.models import TeacherResponse
from app.db.session import session_scope
from app.services.costs import CostCap


class DbResponseStore:
    """gad's ResponseStore on the teacher_responses table: the cache, the journal and the cost ledger.

    Rows are keyed by gad's content-addressed cache key (gad.llm.cache.cache_key: endpoint, model,
    sampling, messages), so one answer serves every collection and judgement that asks the same
    question. gad writes a `pending` record before each attempt and the outcome after it (one row,
    replaced), so a request in flight when a worker dies stays on the books. With a `cap`, every
    request is checked against the job's cost cap before it is claimed (and so before it is sent)."""

    def __init__(self, sessions, endpoint_id: int | None = None, cap: CostCap | None = None):
        self.sessions, self.endpoint_id, self.cap = sessions, endpoint_id, cap

    def get(self, key: str) -> dict | None:
        with self.sessions() as s:
            row = s.scalar(select(TeacherResponse).where(TeacherResponse.cache_key == key))
            return dict(row.record) if row else None

    def _values(self, record: dict) -> dict:
        usage = record.get("usage") or {}
        return dict(endpoint_id=self.endpoint_id, status=record["status"], response=record.get("response"),
                    record=record, prompt_tokens=usage.get("prompt_tokens", 0),
                    completion_tokens=usage.get("completion_tokens", 0), cost=record.get("cost", 0.0))

    def put(self, key: str, record: dict) -> None:
        values = self._values(record)
        try:
            with session_scope(self.sessions) as s:
                s.add(TeacherResponse(cache_key=key, **values))
        except IntegrityError:  # stored before (pending, then the outcome; or a retried failure): newest wins
            with session_scope(self.sessions) as s:
                s.execute(update(TeacherResponse).where(TeacherResponse.cache_key == key).values(**values))

    def put_if(self, key: str, record: dict, allowed) -> dict | None:
        """Write `record` only if `allowed(current)`; else return the current record. Check and write are
        one transaction, so two workers reaching the same prompt at once do not both pay for it: a new
        key is claimed by its INSERT (the unique key picks one winner); an existing row is locked
        (SELECT ... FOR UPDATE on PostgreSQL; on SQLite the write lock, and a stale read fails and is
        retried)."""
        from sqlalchemy.exc import OperationalError

        if self.cap is not None:
            self.cap.check()  # raises CostCapReached: ChatRunner sends nothing more and lets in-flight answers land
        for _ in range(20):
            try:
                with session_scope(self.sessions) as s:
                    row = s.scalar(select(TeacherResponse).where(TeacherResponse.cache_key == key).with_for_update())
                    current = dict(row.record) if row is not None else None
                    if not allowed(current):
                        return current
                    if row is None:
                        s.add(TeacherResponse(cache_key=key, **self._values(record)))
                    else:
                        for name, value in self._values(record).items():
                            setattr(row, name, value)
                return None
            except (IntegrityError, OperationalError):  # another process inserted or wrote first: look again
                time.sleep(0.05)
        raise RuntimeError(f"response cache: could not settle key {key[:12]} after 20 tries (database contention)")
