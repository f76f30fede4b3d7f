"""The annotators' side of a study: the open studies, the blind view of an item, the queue (who gets
which item next), votes, skips and undo.

Quota: the next item is reserved for the annotator who asked (a lease that expires); an item is handed
out only while its votes plus live leases are under `annotators_per_item`, and a vote through the
queue needs the voter's lease (or an earlier vote of theirs on the item, which it replaces). Queue
changes of one study are serialised by a lock on its row taken first thing. With queue_order
"disagreement", items an LLM judge disagrees on (with itself or the humans) go first (study_judge).
An annotator sees only the prompt and two anonymous responses, left and right; votes are stored as
a/b/tie after undoing the left/right draw (study_items).
"""

from __future__ import annotations

from datetime import UTC, timedelta

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.models import ItemLease, Study, StudyItem, Vote, utcnow
from app.enums import Side, StudyStatus, VoteChoice
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.services.studies import get_study
from app.services.study_judge import disagreement

LEASE_SECONDS = 900.0  # an item stays reserved for its annotator this long (GAD_LEASE_SECONDS)


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
    """A naive timestamp (SQLite keeps no zone) as UTC."""
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
