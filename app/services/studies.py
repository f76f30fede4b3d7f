"""Blind side-by-side human evaluation, the researcher's side: the models a study compares, creating it,
what a study is (its view, its job), the review of leaking responses, opening and closing it.

Life of a study:  draft (items being generated) -> review (responses that give their model away
are flagged; the creator drops or keeps them) -> open (annotators vote) -> closed.
The rest of a study lives next door: building its items (study_items), the annotators' queue and votes
(study_queue), results and export (study_results), and the LLM judge that rates every item in both
orders, whose disagreements can go first in the queue (study_judge).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Checkpoint, Job, Study, StudyItem
from app.enums import JobKind, StudyStatus
from app.errors import Conflict, InvalidInput, NotFound
from app.services.costs import checked_cap
from app.services.datasets import get_dataset
from app.services.lookup import one
from app.services.model_ids import model_id
from app.services.study_judge import QUEUE_ORDERS


def parse_model(spec: dict, field: str, session: Session) -> dict:
    """{checkpoint_id} | {path} (folder or hub id) | {responses} (a file of answers), with a label."""
    given = [k for k in ("checkpoint_id", "path", "responses") if spec.get(k) not in (None, "")]
    if len(given) != 1:
        raise InvalidInput(f"{field}: give exactly one of checkpoint_id, path, responses", field=field)
    if spec.get("checkpoint_id") is not None:
        ck = session.get(Checkpoint, spec["checkpoint_id"])
        if ck is None:
            raise NotFound(f"{field}: no checkpoint with id {spec['checkpoint_id']}", field=field)
        label = spec.get("label") or model_id(ck.run_id, ck.step)
        return {"checkpoint_id": ck.id, "label": label}
    from app.services.inputs import resolve_file, resolve_model

    if spec.get("path"):
        return {"path": resolve_model(spec["path"], field), "label": spec.get("label") or spec["path"]}
    return {"responses": resolve_file(spec["responses"], field), "label": spec.get("label") or spec["responses"]}


def model_choice(session: Session, settings, choice: str, label: str | None = None) -> dict:
    """A picker's choice as a study/evaluation model spec: 'run-3/step-40' (a checkpoint), a model id
    from the chat registry, or a path (a model folder, or a responses file by its suffix)."""
    from app.services.chat import list_models
    from app.services.model_ids import parse_model_id

    choice = (choice or "").strip()
    if not choice:
        raise InvalidInput("choose a model", field="model")
    if found := parse_model_id(choice):
        ck = session.scalar(select(Checkpoint).where(Checkpoint.run_id == found[0], Checkpoint.step == found[1]))
        if ck is not None:
            return {"checkpoint_id": ck.id, "label": label or choice}
    for entry in list_models(session, settings):
        if entry.id == choice and entry.kind == "base":
            return {"path": entry.path, "label": label or choice}
        if entry.id == choice and entry.kind == "endpoint":
            raise InvalidInput(f"{choice}: an endpoint cannot be evaluated here; collect its responses into a file "
                               f"and give the file", field="model")
    if Path(choice).suffix.lower() in (".jsonl", ".json", ".csv", ".parquet"):
        return {"responses": choice, "label": label or Path(choice).stem}
    return {"path": choice, "label": label or Path(choice.rstrip("/")).name or choice}


def create_study(session: Session, *, name: str, model_a: dict, model_b: dict, dataset_id: int,
                 n_items: int | None = None, annotators_per_item: int = 1, guidelines: str = "",
                 max_new_tokens: int = 256, seed: int = 0, user_id: int | None = None,
                 queue_order: str = "standard", judge_endpoint_id: int | None = None,
                 max_cost_usd: float | None = None) -> tuple[Study, Job]:
    """`judge_endpoint_id`: an LLM judge rates every item in both orders when the items are built;
    `queue_order` "disagreement" then hands out first the items it disagrees on (app.services.study_judge).
    `max_cost_usd`: the judge's cost cap (the job's, as for collections): the job pauses before a verdict
    that could pass it, and POST /api/jobs/{id}/resume queues it again under a raised cap."""
    get_dataset(session, dataset_id)
    checked_cap(max_cost_usd)
    if max_cost_usd is not None and judge_endpoint_id is None:
        raise InvalidInput("a cost cap limits the judge's spend: choose a judge endpoint, or give no cap",
                           field="max_cost_usd")
    if not name or len(name) > 200:
        raise InvalidInput("name: 1-200 characters", field="name")
    if n_items is not None and n_items < 1:
        raise InvalidInput("n_items must be at least 1", field="n_items")
    if not 1 <= annotators_per_item <= 20:
        raise InvalidInput("annotators_per_item must be between 1 and 20", field="annotators_per_item")
    if queue_order not in QUEUE_ORDERS:
        raise InvalidInput(f"queue_order must be one of {', '.join(QUEUE_ORDERS)}", field="queue_order")
    if queue_order == "disagreement" and judge_endpoint_id is None:
        raise InvalidInput("a queue ordered by the judge's disagreements needs a judge endpoint",
                           field="judge_endpoint_id")
    if judge_endpoint_id is not None:
        from app.services.endpoints import get_endpoint

        get_endpoint(session, judge_endpoint_id)
    a, b = parse_model(model_a, "model_a", session), parse_model(model_b, "model_b", session)
    study = Study(name=name, model_a=json.dumps(a), model_b=json.dumps(b), dataset_id=dataset_id,
                  n_items=n_items, annotators_per_item=annotators_per_item, guidelines=guidelines or "",
                  settings={"max_new_tokens": max_new_tokens, "seed": seed, "queue_order": queue_order,
                            "judge_endpoint_id": judge_endpoint_id}, created_by=user_id,
                  blind_secret=secrets.token_hex(32))
    session.add(study)
    session.flush()
    job = Job(kind=JobKind.study, params={"study_id": study.id, "max_cost_usd": max_cost_usd}, created_by=user_id)
    session.add(job)
    session.flush()
    return study, job


def study_job(session: Session, study_id: int) -> Job | None:
    """The generation job of a study (its items are written by a worker)."""
    for job in session.scalars(select(Job).where(Job.kind == JobKind.study).order_by(Job.id.desc())):
        if (job.params or {}).get("study_id") == study_id:
            return job
    return None


def get_study(session: Session, study_id: int) -> Study:
    return one(session, Study, study_id, "study")


def list_studies(session: Session) -> list[Study]:
    return list(session.scalars(select(Study).order_by(Study.id.desc())))


def model_label(raw: str) -> str:
    return json.loads(raw).get("label", "?")


def study_view(session: Session, study: Study) -> dict:
    n = session.scalar(select(func.count()).select_from(StudyItem).where(StudyItem.study_id == study.id,
                                                                       StudyItem.dropped.is_(False))) or 0
    flagged = sum(1 for lk in session.scalars(select(StudyItem.leaks).where(StudyItem.study_id == study.id)) if lk)
    return {"id": study.id, "name": study.name, "status": study.status, "dataset_id": study.dataset_id,
            "model_a": model_label(study.model_a), "model_b": model_label(study.model_b), "items": n,
            "flagged": flagged, "annotators_per_item": study.annotators_per_item, "guidelines": study.guidelines,
            "created_at": study.created_at, "queue_order": (study.settings or {}).get("queue_order", "standard")}


def flagged_items(session: Session, study_id: int) -> list[dict]:
    rows = session.scalars(select(StudyItem).where(StudyItem.study_id == study_id).order_by(StudyItem.position))
    return [{"item_id": it.id, "position": it.position, "leaks": it.leaks, "dropped": it.dropped,
             "prompt": it.prompt, "response_a": it.response_a, "response_b": it.response_b}
            for it in rows if it.leaks]


def review_leaks(session: Session, study_id: int, drop: bool) -> Study:
    """The creator's decision on flagged items: drop them all, or keep them; then the study opens."""
    study = get_study(session, study_id)
    if study.status != StudyStatus.review:
        raise Conflict(f"study {study_id} is {study.status}; only a study in review takes this decision")
    if drop:
        for it in session.scalars(select(StudyItem).where(StudyItem.study_id == study_id)):
            if it.leaks:
                it.dropped = True
    study.status = StudyStatus.open
    session.flush()
    return study


def set_status(session: Session, study_id: int, status: str) -> Study:
    study = get_study(session, study_id)
    if status not in (StudyStatus.open, StudyStatus.closed) or study.status in (StudyStatus.draft, StudyStatus.review):
        raise Conflict(f"study {study_id} is {study.status}; it can be opened or closed only once its items "
                       f"are generated and reviewed")
    study.status = StudyStatus(status)
    session.flush()
    return study
