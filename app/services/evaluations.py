"""Evaluation results: score rows (model x set) and the judge's per-sample answers."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Evaluation, JudgeScore
from app.errors import NotFound


def list_rows(session: Session, *, job_id: int | None = None, checkpoint_id: int | None = None,
              limit: int = 200) -> list[Evaluation]:
    q = select(Evaluation).order_by(Evaluation.id.desc()).limit(limit)
    if job_id is not None:
        q = q.where(Evaluation.job_id == job_id)
    if checkpoint_id is not None:
        q = q.where(Evaluation.checkpoint_id == checkpoint_id)
    return list(session.scalars(q))


def judge_samples(session: Session, evaluation_id: int, *, offset: int = 0, limit: int = 50) -> list[JudgeScore]:
    if session.get(Evaluation, evaluation_id) is None:
        raise NotFound(f"no evaluation with id {evaluation_id}")
    return list(session.scalars(select(JudgeScore).where(JudgeScore.evaluation_id == evaluation_id)
                                .order_by(JudgeScore.id).offset(offset).limit(limit)))
