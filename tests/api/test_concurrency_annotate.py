"""Annotation under concurrency, on SQLite and PostgreSQL: 50 annotators racing for the same items
with repeated votes and vote/undo races; the per-item quota; votes outside one's queue; the blind
side secret. Real servers over loopback; every loop is bounded."""

from __future__ import annotations

import random
import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from tests.api.conftest import ServerThread, free_port, make_studio, wait_for
from tests.studio.conftest import pg_admin_url, pg_url  # noqa: F401 (fixtures)

ANNOTATORS = 50


def _open_study(ctx, items: int, quota: int, annotators: int) -> tuple[int, dict[str, str]]:
    """An open study with `items` items and `annotators` annotator accounts (tokens, no passwords)."""
    from app.db.models import Study, StudyItem
    from app.db.session import session_scope
    from app.services import users as user_service

    tokens = {}
    with session_scope(ctx.sessions) as s:
        study = Study(name="race", model_a='{"label": "a"}', model_b='{"label": "b"}', status="open",
                      annotators_per_item=quota, blind_secret="x" * 64)
        s.add(study)
        s.flush()
        s.add_all(StudyItem(study_id=study.id, position=i, prompt=f"p{i}", response_a="x", response_b="y",
                            a_on_left=bool(i % 2)) for i in range(items))
        for i in range(annotators):
            user = user_service.create_user(s, f"ann{i:02d}", "annotator")
            tokens[user.name] = user_service.create_token(s, user, "t")[1]
        study_id = study.id
    return study_id, tokens


def _annotate(url: str, token: str, study_id: int, seed: int, statuses: Counter, lock: threading.Lock) -> set[int]:
    """One annotator: take items until none is left; each vote is sent three times at once, and every
    third item also races an undo against its votes. Returns the items the queue handed out."""
    rng = random.Random(seed)
    given: set[int] = set()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c, \
            ThreadPoolExecutor(4) as pool:
        for round_ in range(200):  # bounded: far more rounds than items
            r = c.get(f"/api/annotate/{study_id}/next")
            with lock:
                statuses[("next", r.status_code)] += 1
            if r.status_code == 204:
                return given
            assert r.status_code == 200, r.text
            item = r.json()["item_id"]
            given.add(item)
            side = rng.choice(["left", "right", "tie"])
            vote = {"item_id": item, "side": side}
            calls = [lambda vote=vote: c.post(f"/api/annotate/{study_id}/votes", json=vote)] * 3
            if round_ % 3 == 1:
                calls.append(lambda: c.post(f"/api/annotate/{study_id}/undo"))
            for f in [pool.submit(call) for call in calls]:
                resp = f.result()
                with lock:
                    statuses[(resp.request.url.path.rsplit("/", 1)[-1], resp.status_code)] += 1
    raise AssertionError("an annotator never reached the end of the queue")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_fifty_annotators_racing_end_with_one_vote_per_item_within_quota(backend, tmp_path, request):
    from app.db.models import StudyItem, User, Vote

    db_url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    items, quota = 12, 10
    app, ctx, _env, _ = make_studio(tmp_path, db_url=db_url)
    study_id, tokens = _open_study(ctx, items, quota, ANNOTATORS)
    statuses, lock = Counter(), threading.Lock()
    try:
        with ServerThread(app, free_port()) as srv, ThreadPoolExecutor(ANNOTATORS) as pool:
            futures = {name: pool.submit(_annotate, srv.url, tok, study_id, i, statuses, lock)
                       for i, (name, tok) in enumerate(tokens.items())}
            given = {name: f.result(timeout=600) for name, f in futures.items()}
        assert not [k for k in statuses if k[1] >= 500], statuses
        assert {code for _, code in statuses} <= {200, 204, 409}, statuses
        with ctx.sessions() as s:
            rows = s.execute(select(User.name, Vote.item_id, Vote.choice).join(User, User.id == Vote.annotator_id)
                             .join(StudyItem, StudyItem.id == Vote.item_id)
                             .where(StudyItem.study_id == study_id)).all()
        per_pair = Counter((name, item) for name, item, _ in rows)
        assert max(per_pair.values()) == 1                       # never two rows for one annotator and item
        voted = defaultdict(set)
        for name, item, _ in rows:
            voted[name].add(item)
        for name in tokens:                                     # exactly one vote on every item handed out
            assert voted[name] == given[name], name
        per_item = Counter(item for _, item, choice in rows if choice != "skip")
        assert len(per_item) == items and set(per_item.values()) == {quota}, per_item  # full, never over
        assert len(rows) == items * quota
    finally:
        ctx.close()


@pytest.fixture
def quota_studio(tmp_path):
    app, ctx, _env, _ = make_studio(tmp_path, GAD_LEASE_SECONDS=1)
    with ServerThread(app, free_port()) as srv:
        yield srv.url, ctx, app
    ctx.close()


def test_quota_of_one_holds_for_thirty_annotators_voting_at_once(quota_studio):
    from app.db.models import StudyItem, Vote

    url, ctx, _ = quota_studio
    study_id, tokens = _open_study(ctx, items=4, quota=1, annotators=30)

    def everyone_votes_on_everything(token: str) -> list[int]:
        # The audit's attack: skip the queue and vote on every item id of the study.
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            c.get(f"/api/annotate/{study_id}/next")
            with ctx.sessions() as s:
                ids = s.scalars(select(StudyItem.id).where(StudyItem.study_id == study_id)).all()
            return [c.post(f"/api/annotate/{study_id}/votes", json={"item_id": i, "side": "left"}).status_code
                    for i in ids]

    with ThreadPoolExecutor(30) as pool:
        codes = Counter(code for got in pool.map(everyone_votes_on_everything, tokens.values()) for code in got)
    assert set(codes) <= {200, 403, 409} and codes[200] == 4, codes
    with ctx.sessions() as s:
        per_item = s.execute(select(Vote.item_id, func.count()).group_by(Vote.item_id)).all()
    assert sorted(n for _, n in per_item) == [1, 1, 1, 1]


def test_votes_outside_the_queue_or_after_an_expired_lease_are_refused(quota_studio):
    url, ctx, _ = quota_studio
    study_id, tokens = _open_study(ctx, items=1, quota=1, annotators=2)
    a, b = (httpx.Client(base_url=url, headers={"Authorization": f"Bearer {t}"}, timeout=30) for t in tokens.values())
    item = a.get(f"/api/annotate/{study_id}/next").json()["item_id"]
    assert b.get(f"/api/annotate/{study_id}/next").status_code == 204          # reserved for a
    r = b.post(f"/api/annotate/{study_id}/votes", json={"item_id": item, "side": "left"})
    assert r.status_code == 403 and "not in your queue" in r.json()["message"]
    # a's reservation lapses (GAD_LEASE_SECONDS=1); b takes the item and votes; a's late vote is refused.
    wait_for(lambda: b.get(f"/api/annotate/{study_id}/next").status_code == 200, timeout=20, what="lease expiry")
    assert b.post(f"/api/annotate/{study_id}/votes", json={"item_id": item, "side": "left"}).status_code == 200
    r = a.post(f"/api/annotate/{study_id}/votes", json={"item_id": item, "side": "right"})
    assert r.status_code == 409 and "expired" in r.json()["message"]
    # b changes its mind: a repeat vote replaces its own, and undo gives the item back to b alone.
    assert b.post(f"/api/annotate/{study_id}/votes", json={"item_id": item, "side": "tie"}).status_code == 200
    assert b.post(f"/api/annotate/{study_id}/undo").status_code == 200
    assert b.post(f"/api/annotate/{study_id}/votes", json={"item_id": item, "side": "right"}).status_code == 200
    a.close()
    b.close()
