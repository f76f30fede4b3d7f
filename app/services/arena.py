"""Blind side-by-side votes cast in the Chat page feed a study: one study per pair of models ("Chat
arena: A vs B"), one item per vote, so the votes show on the Human evaluation page with every other
study's results."""

from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Study, StudyItem
from app.enums import StudyStatus
from app.errors import InvalidInput
from app.services.study_items import leaks
from app.services.study_queue import cast_vote


def arena_study(session: Session, model_x: str, model_y: str, user_id: int | None) -> Study:
    """The study that collects blind chat votes between two models (one per unordered pair), created
    open on first use; it shows on the Human evaluation page like any other study."""
    a, b = sorted((model_x, model_y))
    name = f"Chat arena: {a} vs {b}"
    study = session.scalar(select(Study).where(Study.name == name))
    if study is None:
        study = Study(name=name, model_a=json.dumps({"label": a, "chat_model": a}),
                      model_b=json.dumps({"label": b, "chat_model": b}), dataset_id=None,
                      status=StudyStatus.open, annotators_per_item=1,
                      guidelines="Blind votes cast in the Chat page's side-by-side mode.",
                      settings={"source": "chat"}, created_by=user_id)
        session.add(study)
        session.flush()
    return study


def record_arena_vote(session: Session, user_id: int, models: list[str], prompt: str, responses: list[str],
                      side: str) -> Study:
    """A blind side-by-side vote from the chat: `models` and `responses` in the order shown (left, right);
    `side` is left | right | tie | both_bad. Stored as a study item with one vote (the shuffle recorded)."""
    if len(models) != 2 or len(responses) != 2:
        raise InvalidInput("a vote compares exactly two models", field="models")
    if models[0] == models[1]:
        raise InvalidInput("both sides are the same model; pick two different ones", field="models")
    if not all(r.strip() for r in responses):
        raise InvalidInput("both models must have answered before you vote", field="responses")
    study = arena_study(session, models[0], models[1], user_id)
    a_on_left = models[0] == json.loads(study.model_a)["label"]
    resp_a, resp_b = (responses[0], responses[1]) if a_on_left else (responses[1], responses[0])
    position = (session.scalar(select(func.max(StudyItem.position)).where(StudyItem.study_id == study.id)) or 0) + 1
    item = StudyItem(study_id=study.id, position=position, prompt=prompt, response_a=resp_a, response_b=resp_b,
                     a_on_left=a_on_left, leaks=leaks(resp_a) + leaks(resp_b))
    session.add(item)
    session.flush()
    cast_vote(session, item.id, user_id, side)
    return study
