"""Blind side-by-side human evaluation: building a study, what an annotator sees, votes, results.

Life of a study:  draft (items being generated) -> review (responses that give their model away
are flagged; the creator drops or keeps them) -> open (annotators vote) -> closed.
An annotator only ever receives the prompt and two anonymous responses, left and right, in an
order drawn per item and recorded; votes are stored as a/b/tie after undoing that shuffle. The
draw is seeded by a random secret of the study (never by its id, which annotators can see).

Quota: GET next reserves an item for the annotator (a lease that expires); an item is handed out
only while its votes plus live leases are under `annotators_per_item`, and a vote through the
queue needs the voter's lease (or an earlier vote of theirs on the item, which it replaces).
Queue changes of one study are serialised by a lock on its row taken first thing. With queue_order
"disagreement", items an LLM judge disagrees on (with itself or the humans) go first (study_judge.py).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import random
import re
import secrets
from collections import Counter, defaultdict
from datetime import UTC, timedelta
from pathlib import Path

from sqlalchemy import and_, case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.models import Checkpoint, ItemLease, Job, Study, StudyItem, User, Vote, utcnow
from app.db.session import session_scope
from app.enums import JobKind, Side, StudyStatus, VoteChoice
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services.datasets import dataset_examples, get_dataset
from app.services.lookup import one
from app.services.model_ids import checkpoint_student, model_id
from app.services.study_judge import QUEUE_ORDERS, disagreement, judge_items

log = logging.getLogger("gad_studio.studies")
LEASE_SECONDS = 900.0  # an item stays reserved for its annotator this long (GAD_LEASE_SECONDS)

# Phrases that tell an annotator which model wrote a response. Arena tools clean these after the
# fact; here the creator sees them before anyone votes.
LEAK = re.compile(r"\b(?:as an? (?:ai|language model|assistant)\b[^.\n]{0,40}\b(?:developed|created|trained|made) by"
                  r"|i(?:'m| am) (?:chatgpt|gpt-?[0-9][\w.-]*|claude|qwen[\w.-]*|llama[\w.-]*|gemini|mistral)"
                  r"|as (?:chatgpt|gpt-?4[\w.-]*|claude|qwen[\w.-]*|llama[\w.-]*|gemini)\b"
                  r"|openai|anthropic|alibaba cloud|meta ai|google deepmind|tongyi)", re.IGNORECASE)


def leaks(text: str) -> list[str]:
    return sorted({m.group(0) for m in LEAK.finditer(text or "")})


# --- models a study compares ---------------------------------------------------------------
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
                 queue_order: str = "standard", judge_endpoint_id: int | None = None) -> tuple[Study, Job]:
    """`judge_endpoint_id`: an LLM judge rates every item in both orders when the items are built;
    `queue_order` "disagreement" then hands out first the items it disagrees on (app.services.study_judge)."""
    get_dataset(session, dataset_id)
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
    job = Job(kind=JobKind.study, params={"study_id": study.id}, created_by=user_id)
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


# --- building the items (a worker task) -----------------------------------------------------
def _answers(spec: dict, examples, max_new_tokens: int, seed: int, allow_remote_code: bool, on_answer=None):
    """One model's answers to the examples; `on_answer()` is called after each (the job's progress)."""
    from gad.llm.evaluate import ModelSpec, responses_from_file
    from gad.llm.generation import generate_for_messages

    tick = on_answer or (lambda: None)
    if spec.get("responses"):
        out = responses_from_file(ModelSpec(spec["label"], responses=spec["responses"]), examples)
        for _ in out:
            tick()
        return out
    # What gad's generate_responses runs, consumed answer by answer so each one is counted as it comes.
    out = []
    for text, *_ in generate_for_messages(spec["path"], [ex.messages for ex in examples],
                                          max_new_tokens=max_new_tokens, temperature=0.8, greedy=False, seed=seed,
                                          trust_remote_code=allow_remote_code):
        out.append(text)
        tick()
    return out


def generate_items(ctx, job_id: int, claim: str | None = None) -> dict:
    """Both models answer the study's test prompts; left/right is drawn per item and recorded. The
    database session is closed while the models generate (that can take hours on real models).
    With the worker's `claim`, the job row shows done/total answers (both models), rate and ETA live."""
    from app.services.progress import JobProgress

    with ctx.sessions() as s:
        study_id = s.get(Job, job_id).params["study_id"]
        generated = s.scalar(select(StudyItem.id).where(StudyItem.study_id == study_id).limit(1)) is not None
    if generated:  # idempotent on redelivery; the judging may be what the first delivery left undone
        return {"items": "already generated", **judge_items(ctx, study_id)}
    with ctx.sessions() as s:
        study = s.get(Study, study_id)
        examples = dataset_examples(s, study.dataset_id, "test") or dataset_examples(s, study.dataset_id)
        examples = examples[:study.n_items] if study.n_items else examples
        seed, tokens = study.settings.get("seed", 0), study.settings.get("max_new_tokens", 256)
        specs = [_resolved(s, json.loads(study.model_a)), _resolved(s, json.loads(study.model_b))]
        study_id = study.id
        if not study.blind_secret:  # a study made before secrets existed, or by a direct insert
            study.blind_secret = secrets.token_hex(32)
            s.commit()
        secret = study.blind_secret
    progress = JobProgress(ctx.sessions, job_id, claim, 2 * len(examples)) if claim else None
    tick = (lambda: progress({"status": "ok"})) if progress else None  # no ledger: nothing is paid
    resp_a, resp_b = [_answers(spec, examples, tokens, seed + i, ctx.settings.allow_remote_code, tick)
                      for i, spec in enumerate(specs)]
    rng = random.Random(secret)  # secret, stored: the draw is reproducible here and unguessable elsewhere
    stripped = 0
    with session_scope(ctx.sessions) as s:
        items = []
        for i, (ex, ra, rb) in enumerate(zip(examples, resp_a, resp_b, strict=True)):
            (prompt, ra, rb), n = strip_nul(ex.prompt_text, ra, rb)
            stripped += n
            items.append(StudyItem(study_id=study_id, position=i, prompt=prompt, response_a=ra, response_b=rb,
                                   a_on_left=rng.random() < 0.5, leaks=leaks(ra) + leaks(rb)))
        s.add_all(items)
        flagged = sum(1 for it in items if it.leaks)
        s.get(Study, study_id).status = StudyStatus.review if flagged else StudyStatus.open
    if stripped:
        log.warning("study %s: removed %d NUL characters from prompts and responses", study_id, stripped)
    return {"items": len(items), "flagged": flagged, "nul_removed": stripped, **judge_items(ctx, study_id)}


def strip_nul(*texts: str) -> tuple[list[str], int]:
    """The texts without NUL characters, and how many were removed. A model can emit U+0000, which
    PostgreSQL refuses in text columns (the whole job would fail); it carries no meaning to a reader."""
    out = [(t or "").replace("\x00", "") for t in texts]
    return out, sum(len(t or "") - len(o) for t, o in zip(texts, out, strict=True))


def _resolved(session: Session, spec: dict) -> dict:
    """A model spec with its checkpoint turned into a folder, so generation needs no session."""
    if spec.get("checkpoint_id") is not None:
        return {**spec, "path": checkpoint_student(session.get(Checkpoint, spec['checkpoint_id']).path)}
    return spec


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


# --- the annotator's side -------------------------------------------------------------------
def blind_view(item: StudyItem) -> dict:
    """Left/right only: the annotator never learns which model is which."""
    left, right = (item.response_a, item.response_b) if item.a_on_left else (item.response_b, item.response_a)
    return {"item_id": item.id, "study_id": item.study_id, "prompt": item.prompt, "left": left, "right": right}


def open_studies_for(session: Session) -> list[Study]:
    return list(session.scalars(select(Study).where(Study.status == StudyStatus.open).order_by(Study.id)))


def _lock_queue(session: Session, study_id: int) -> None:
    """Serialise queue changes of one study. A no-op UPDATE of its row, first in the transaction,
    takes that row's lock on PostgreSQL and the write lock on SQLite (so no stale read can be
    followed by a write); reads after it see every committed vote and lease."""
    session.execute(update(Study).where(Study.id == study_id).values(status=Study.status)
                    .execution_options(synchronize_session=False))


def _taken(session: Session, item_id: int, annotator_id: int, now) -> int:
    """Places used on an item: counted votes, plus live leases of other annotators who have not voted."""
    votes = session.scalar(select(func.count()).select_from(Vote).where(
        Vote.item_id == item_id, Vote.choice != VoteChoice.skip, Vote.annotator_id != annotator_id)) or 0
    leases = session.scalar(select(func.count()).select_from(ItemLease).where(
        ItemLease.item_id == item_id, ItemLease.annotator_id != annotator_id, ItemLease.expires_at > now)) or 0
    return votes + leases


def _lease(session: Session, study_id: int, item_id: int, annotator_id: int, now, seconds: float) -> None:
    until = now + timedelta(seconds=seconds)
    row = session.scalar(select(ItemLease).where(ItemLease.item_id == item_id, ItemLease.annotator_id == annotator_id))
    if row is None:
        session.add(ItemLease(study_id=study_id, item_id=item_id, annotator_id=annotator_id, expires_at=until))
    else:
        row.expires_at = until
    session.flush()


def next_item(session: Session, study_id: int, annotator_id: int, lease_seconds: float = LEASE_SECONDS,
              skipped: bool = False) -> dict | None:
    """The annotator's next item, reserved for them for `lease_seconds` (commit to keep the lease): the
    item they hold already, else one they have not seen whose votes and live leases are under the
    quota, fewest first. None when nothing is left for them. `skipped`: the items they skipped count as
    not seen (offered again once the rest is done)."""
    study = get_study(session, study_id)
    if study.status != StudyStatus.open:
        raise Conflict(f"study {study_id} is {study.status}, not open for votes")
    _lock_queue(session, study_id)
    now = utcnow()
    seen = select(Vote.item_id).where(Vote.annotator_id == annotator_id,
                                      *([Vote.choice != VoteChoice.skip] if skipped else []))
    held = session.scalar(
        select(StudyItem)
        .join(ItemLease, and_(ItemLease.item_id == StudyItem.id, ItemLease.annotator_id == annotator_id))
        .where(StudyItem.study_id == study_id, StudyItem.dropped.is_(False), StudyItem.id.not_in(seen),
               ItemLease.expires_at > now).order_by(StudyItem.position).limit(1))
    row = held if held is not None else _free_item(session, study, annotator_id, seen, now)
    if row is None:
        return None
    _lease(session, study_id, row.id, annotator_id, now, lease_seconds)
    return {**blind_view(row), "progress": progress(session, study_id, annotator_id), "guidelines": study.guidelines}


def _free_item(session: Session, study: Study, annotator_id: int, seen, now) -> StudyItem | None:
    votes = (select(Vote.item_id, func.count().label("n")).where(Vote.choice != VoteChoice.skip)
             .group_by(Vote.item_id).subquery())
    leases = (select(ItemLease.item_id, func.count().label("n"))
              .where(ItemLease.study_id == study.id, ItemLease.expires_at > now, ItemLease.annotator_id != annotator_id)
              .group_by(ItemLease.item_id).subquery())
    used = func.coalesce(votes.c.n, 0) + func.coalesce(leases.c.n, 0)
    order = [used, StudyItem.position]
    if (study.settings or {}).get("queue_order") == "disagreement":  # active annotation: disputed items first
        disputed = disagreement(session, study)["items"]
        if disputed:
            order.insert(0, case((StudyItem.id.in_(disputed), 0), else_=1))
    return session.execute(
        select(StudyItem).outerjoin(votes, votes.c.item_id == StudyItem.id)
        .outerjoin(leases, leases.c.item_id == StudyItem.id)
        .where(StudyItem.study_id == study.id, StudyItem.dropped.is_(False), StudyItem.id.not_in(seen),
               used < study.annotators_per_item)
        .order_by(*order).limit(1)).scalar_one_or_none()


def progress(session: Session, study_id: int, annotator_id: int) -> dict:
    """{done: items rated, skipped: items skipped (not rated), total}."""
    mine = (select(Vote.choice, func.count()).join(StudyItem, StudyItem.id == Vote.item_id)
            .where(StudyItem.study_id == study_id, Vote.annotator_id == annotator_id).group_by(Vote.choice))
    counts = dict(session.execute(mine).all())
    skipped = counts.pop(VoteChoice.skip, 0)
    done = sum(counts.values())
    total = session.scalar(select(func.count()).select_from(StudyItem).where(
        StudyItem.study_id == study_id, StudyItem.dropped.is_(False))) or 0
    return {"done": done, "skipped": skipped, "total": total}


def _choice(item: StudyItem, side: str) -> str:
    if side in (Side.tie, Side.both_bad):
        return VoteChoice.tie
    if side == Side.skip:
        return VoteChoice.skip
    return VoteChoice.a if (side == Side.left) == item.a_on_left else VoteChoice.b


def cast_vote(session: Session, item_id: int, annotator_id: int, side: str, study_id: int | None = None,
              queue: bool = False) -> Vote:
    """side: left | right | tie | both_bad | skip. One vote per annotator per item (a unique key);
    voting again on the same item replaces the earlier vote. With `study_id`, the item must be that
    study's (an annotator's URL names the study). With `queue` (the annotation API), the item must
    be in the annotator's queue (their lease, or their earlier vote) and the quota must hold."""
    if side not in Side.__members__:
        raise InvalidInput(f"vote must be one of {', '.join(Side)}, got {side!r}", field="side")
    item = session.get(StudyItem, item_id)
    if item is None or item.dropped or (study_id is not None and item.study_id != study_id):
        raise NotFound(f"no item {item_id} in {'study ' + str(study_id) if study_id else 'any study'}",
                       field="item_id")
    study = session.get(Study, item.study_id)
    if study.status != StudyStatus.open:
        raise Conflict(f"study {study.id} is {study.status}, not open for votes")
    if queue:
        _lock_queue(session, study.id)
    choice = _choice(item, side)
    values = dict(choice=choice, both_bad=side == Side.both_bad, created_at=utcnow())
    existing = session.scalar(select(Vote).where(Vote.item_id == item_id, Vote.annotator_id == annotator_id))
    if queue:
        _check_queue(session, study, item_id, annotator_id, counted=choice != VoteChoice.skip,
                     had_counted=existing is not None and existing.choice != VoteChoice.skip)
    if existing is not None:
        for k, v in values.items():
            setattr(existing, k, v)
        session.flush()
        return existing
    vote = Vote(item_id=item_id, annotator_id=annotator_id, **values)
    try:
        with session.begin_nested():  # a concurrent vote by the same annotator may land first
            session.add(vote)
            session.flush()
    except IntegrityError:
        if queue:  # the queue lock makes this unreachable; if it ever is, the client retries
            raise Conflict(f"another vote on item {item_id} landed at the same moment; reload and try again",
                           field="item_id") from None
        existing = session.scalar(select(Vote).where(Vote.item_id == item_id, Vote.annotator_id == annotator_id))
        for k, v in values.items():
            setattr(existing, k, v)
        session.flush()
        return existing
    return vote


def _check_queue(session: Session, study: Study, item_id: int, annotator_id: int, *, counted: bool,
                 had_counted: bool) -> None:
    """Refuse a vote outside the annotator's queue (403) or beyond the item's quota (409); spend the lease."""
    lease = session.scalar(select(ItemLease).where(ItemLease.item_id == item_id,
                                                   ItemLease.annotator_id == annotator_id))
    voted = session.scalar(select(Vote.id).where(Vote.item_id == item_id, Vote.annotator_id == annotator_id))
    if lease is None and voted is None:
        raise Forbidden(f"item {item_id} is not in your queue: vote on the items GET /api/annotate/{study.id}/next "
                        f"gives you")
    now = utcnow()
    live = lease is not None and _aware(lease.expires_at) > now
    full = _taken(session, item_id, annotator_id, now) >= study.annotators_per_item
    if counted and not had_counted and not live and full:
        raise Conflict(f"item {item_id} has all the votes it needs ({study.annotators_per_item}) and your "
                       f"reservation of it expired; take the next item", field="item_id")
    if lease is not None:
        session.delete(lease)


def _aware(dt):

    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


def undo_last(session: Session, study_id: int, annotator_id: int, lease_seconds: float = LEASE_SECONDS) -> dict | None:
    """Take back this annotator's newest vote in the study; returns that item to vote on again (reserved
    for them, so the vote they cast next fits the quota)."""
    study = get_study(session, study_id)
    if study.status != StudyStatus.open:
        raise Conflict(f"study {study_id} is {study.status}: its votes are final")
    _lock_queue(session, study_id)
    vote = session.scalar(select(Vote).join(StudyItem, StudyItem.id == Vote.item_id)
                          .where(StudyItem.study_id == study_id, Vote.annotator_id == annotator_id)
                          .order_by(Vote.created_at.desc(), Vote.id.desc()).limit(1))
    if vote is None:
        return None
    item = session.get(StudyItem, vote.item_id)
    session.delete(vote)
    session.flush()
    _lease(session, study_id, item.id, annotator_id, utcnow(), lease_seconds)
    return {**blind_view(item), "progress": progress(session, study_id, annotator_id), "guidelines": study.guidelines}


# --- results ---------------------------------------------------------------------------------
def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95% Wilson score interval of a proportion k/n (None for n = 0)."""
    if n == 0:
        return None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def fleiss_kappa(ratings: list[dict[str, int]]) -> float | None:
    """Fleiss' kappa over items each rated by the same number (>= 2) of annotators.
    ratings: one {category: count} per item. None when undefined (too few items, or no variation)."""
    if not ratings:
        return None
    n = sum(ratings[0].values())
    if n < 2 or any(sum(r.values()) != n for r in ratings):
        return None
    cats = sorted({c for r in ratings for c in r})
    big_n = len(ratings)
    p_j = [sum(r.get(c, 0) for r in ratings) / (big_n * n) for c in cats]
    p_i = [(sum(v * v for v in r.values()) - n) / (n * (n - 1)) for r in ratings]
    p_bar, p_e = sum(p_i) / big_n, sum(p * p for p in p_j)
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1 - p_e)


def study_results(session: Session, study_id: int) -> dict:
    study = get_study(session, study_id)
    rows = session.execute(select(Vote.item_id, Vote.choice, Vote.both_bad, User.name)
                           .join(StudyItem, StudyItem.id == Vote.item_id).join(User, User.id == Vote.annotator_id)
                           .where(StudyItem.study_id == study_id, StudyItem.dropped.is_(False))).all()
    counted = [r for r in rows if r.choice != VoteChoice.skip]
    counts = Counter(r.choice for r in counted)
    total = len(counted)
    out = {"study_id": study_id, "model_a": model_label(study.model_a), "model_b": model_label(study.model_b),
           "win": counts[VoteChoice.a], "tie": counts[VoteChoice.tie], "loss": counts[VoteChoice.b], "votes": total,
           "both_bad": sum(1 for r in counted if r.both_bad), "skipped": len(rows) - total}
    for key, k in (("win", out["win"]), ("tie", out["tie"]), ("loss", out["loss"])):
        out[f"{key}_rate"] = k / total if total else None
        ci = wilson(k, total)
        out[f"{key}_ci"] = list(ci) if ci else None
    per = defaultdict(Counter)
    for r in rows:
        per[r.name][r.choice] += 1
    out["annotators"] = [{"annotator": name, "win": c[VoteChoice.a], "tie": c[VoteChoice.tie], "loss": c[VoteChoice.b],
                          "skipped": c[VoteChoice.skip]} for name, c in sorted(per.items())]
    by_item = defaultdict(Counter)
    for r in counted:
        by_item[r.item_id][r.choice] += 1
    k_items = [dict(c) for c in by_item.values() if sum(c.values()) == study.annotators_per_item]
    out["agreement"] = {"fleiss_kappa": fleiss_kappa(k_items) if study.annotators_per_item >= 2 else None,
                        "items": len(k_items), "annotators_per_item": study.annotators_per_item}
    found = disagreement(session, study)
    found.pop("items")  # ids are for the queue; results give counts and rates
    out["judge"] = {**found, "queue_order": (study.settings or {}).get("queue_order", "standard")}
    return out


def export_votes(session: Session, study_id: int, fmt: str) -> str:
    """Every vote with the item it is about and the models unblinded (researchers only)."""
    study = get_study(session, study_id)
    a, b = model_label(study.model_a), model_label(study.model_b)
    rows = session.execute(select(StudyItem, Vote, User.name).join(Vote, Vote.item_id == StudyItem.id)
                           .join(User, User.id == Vote.annotator_id).where(StudyItem.study_id == study_id)
                           .order_by(StudyItem.position, Vote.id)).all()
    records = [{"study_id": study_id, "position": it.position, "item_id": it.id, "annotator": name,
                "choice": v.choice, "winner": {"a": a, "b": b}.get(v.choice, v.choice), "both_bad": v.both_bad,
                "model_a": a, "model_b": b, "left": a if it.a_on_left else b, "prompt": it.prompt,
                "response_a": it.response_a, "response_b": it.response_b, "voted_at": v.created_at.isoformat()}
               for it, v, name in rows]
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if fmt != "csv":
        raise InvalidInput("format must be csv or jsonl", field="format")
    buf = io.StringIO()
    fields = list(records[0]) if records else ["study_id", "position", "item_id", "annotator", "choice"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()


def reset_votes(session: Session, study_id: int) -> None:
    session.execute(delete(Vote).where(Vote.item_id.in_(select(StudyItem.id).where(StudyItem.study_id == study_id))))
