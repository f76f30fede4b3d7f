"""Blind side-by-side human evaluation: what an annotator sees, their votes, and the results."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.models import StudyItem, Vote


def blind_view(item: StudyItem) -> dict:
    """Left/right only: the annotator never learns which model is which."""
    left, right = (item.response_a, item.response_b) if item.a_on_left else (item.response_b, item.response_a)
    return {"item_id": item.id, "prompt": item.prompt, "left": left, "right": right}


def cast_vote(session: Session, item_id: int, annotator_id: int, side: str) -> Vote:
    """side: left | right | tie. One vote per annotator per item (a unique key); voting again replaces it."""
    if side not in ("left", "right", "tie"):
        raise ValueError(f"vote must be left, right or tie, got {side!r}")
    item = session.get(StudyItem, item_id)
    if item is None:
        raise ValueError(f"no study item with id {item_id}")
    choice = "tie" if side == "tie" else ("a" if (side == "left") == item.a_on_left else "b")
    existing = session.scalar(select(Vote).where(Vote.item_id == item_id, Vote.annotator_id == annotator_id))
    if existing is not None:
        existing.choice = choice
        session.commit()
        return existing
    vote = Vote(item_id=item_id, annotator_id=annotator_id, choice=choice)
    session.add(vote)
    try:
        session.commit()
    except IntegrityError:  # a concurrent vote by the same annotator landed first: update that one
        session.rollback()
        existing = session.scalar(select(Vote).where(Vote.item_id == item_id, Vote.annotator_id == annotator_id))
        existing.choice = choice
        session.commit()
        return existing
    return vote


def study_results(session: Session, study_id: int) -> dict:
    rows = session.execute(select(Vote.choice, func.count()).join(StudyItem, StudyItem.id == Vote.item_id)
                           .where(StudyItem.study_id == study_id).group_by(Vote.choice)).all()
    counts = {"a": 0, "b": 0, "tie": 0, **dict(rows)}
    total = sum(counts.values())
    return {"win": counts["a"], "tie": counts["tie"], "loss": counts["b"], "votes": total,
            "win_rate": counts["a"] / total if total else None}
