"""Active annotation on SQLite: a study judged in both orders when its items are built hands out first the
items where the judge's orders disagree or where judge and humans disagree, keeps the annotator blind, and
reports both disagreement rates in its results."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

import gad.llm.api_client as api_client
from app.db.models import Endpoint, Job, StudyItem
from app.db.session import session_scope
from app.enums import Role
from app.errors import InvalidInput
from app.services import studies as study_service
from app.services import study_queue
from app.services.datasets import import_dataset
from app.services.jobs import run_study_generation
from app.services.lifecycle import claim_row
from app.services.study_results import study_results
from app.services.users import create_user

N = 6
BIASED = {1, 4}  # prompts on which the fake judge always prefers whichever answer it reads first


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'studio.db'}"


class FakeJudge:
    """Stands in for gad's ChatRunner: prefers model A's answers ("answer i"), except on BIASED prompts."""
    asked: list = []

    def __init__(self, endpoint, store=None, on_result=None, retry_final=False):
        self.ledger = api_client.Ledger()  # the job's progress watches it (nothing is paid here)

    def run(self, requests):
        out = []
        for messages in requests:
            text = messages[-1]["content"]
            i = int(re.search(r"question (\d+)", text).group(1))
            first = re.search(r"Assistant 1's Answer\]\n(\w+)", text).group(1)
            FakeJudge.asked.append(i)
            prefers_first = i in BIASED or first == "answer"
            out.append({"status": "ok", "response": "8 3\nreasons" if prefers_first else "3 8\nreasons"})
        return out


def _study(ctx, tmp_path, queue_order: str, monkeypatch) -> int:
    prompts, a, b = (tmp_path / f"{n}.jsonl" for n in ("prompts", "a", "b"))
    prompts.write_text("".join(json.dumps({"prompt": f"question {i}", "response": "x"}) + "\n" for i in range(N)))
    a.write_text("".join(json.dumps({"prompt": f"question {i}", "response": f"answer {i}"}) + "\n" for i in range(N)))
    b.write_text("".join(json.dumps({"prompt": f"question {i}", "response": f"reply {i}"}) + "\n" for i in range(N)))
    with session_scope(ctx.sessions) as s:
        ds = import_dataset(s, prompts, test_fraction=0.0)
        judge = Endpoint(name="judge", base_url="http://127.0.0.1:9/v1", model="judge-model", params={})
        s.add(judge)
        s.flush()
        study, job = study_service.create_study(
            s, name="active", model_a={"responses": str(a)}, model_b={"responses": str(b)}, dataset_id=ds.id,
            annotators_per_item=2, queue_order=queue_order, judge_endpoint_id=judge.id)
        study_id, job_id = study.id, job.id
    monkeypatch.setattr(api_client, "ChatRunner", FakeJudge)
    FakeJudge.asked = []
    with session_scope(ctx.sessions) as s:
        claim = claim_row(s, Job, job_id, "test", 60)
    result = run_study_generation(ctx, job_id, claim)
    assert result["items"] == N and sorted(FakeJudge.asked) == sorted(list(range(N)) * 2)  # both orders each
    return study_id


def _users(ctx, *names) -> list[int]:
    with session_scope(ctx.sessions) as s:
        return [create_user(s, n, Role.annotator).id for n in names]


def _positions(ctx, study_id) -> dict[int, StudyItem]:
    with ctx.sessions() as s:
        items = s.scalars(select(StudyItem).where(StudyItem.study_id == study_id)).all()
        s.expunge_all()
    return {it.position: it for it in items}


def _next(ctx, study_id, user_id) -> dict:
    with session_scope(ctx.sessions) as s:
        return study_queue.next_item(s, study_id, user_id)


def _vote_for(ctx, study_id, item: StudyItem, user_id, model: str) -> None:
    side = "left" if (model == "a") == item.a_on_left else "right"
    with session_scope(ctx.sessions) as s:
        study_queue.cast_vote(s, item.id, user_id, side, study_id=study_id)


def test_a_disagreement_queue_hands_out_the_disputed_items_first(studio_ctx, tmp_path, monkeypatch):
    study_id = _study(studio_ctx, tmp_path, "disagreement", monkeypatch)
    items = _positions(studio_ctx, study_id)
    first, second = _users(studio_ctx, "ann1", "ann2")
    # Nobody has voted: the items the judge's two orders disagree on come first, in their order.
    got = _next(studio_ctx, study_id, first)
    assert got["item_id"] == items[1].id
    assert set(got) == {"item_id", "study_id", "prompt", "left", "right", "progress", "guidelines"}  # still blind
    assert "judge" not in json.dumps(got) and "model" not in json.dumps(got)
    # A human who disagrees with the judge's (consistent) verdict on item 0 puts it before the undisputed ones.
    _vote_for(studio_ctx, study_id, items[0], second, "b")
    _vote_for(studio_ctx, study_id, items[1], second, "a")
    _vote_for(studio_ctx, study_id, items[4], second, "a")
    handed = []
    with session_scope(studio_ctx.sessions) as s:
        for _ in range(3):
            row = study_queue.next_item(s, study_id, first)
            handed.append(row["item_id"])
            study_queue.cast_vote(s, row["item_id"], first, "tie", study_id=study_id, queue=True)
    assert handed == [items[1].id, items[0].id, items[4].id]  # the lease held first, then disputed, by position


def test_a_standard_queue_keeps_the_dataset_order(studio_ctx, tmp_path, monkeypatch):
    study_id = _study(studio_ctx, tmp_path, "standard", monkeypatch)
    (user,) = _users(studio_ctx, "ann")
    assert _next(studio_ctx, study_id, user)["item_id"] == _positions(studio_ctx, study_id)[0].id


def test_results_report_how_often_the_judge_disagrees_with_itself_and_with_the_humans(studio_ctx, tmp_path,
                                                                                       monkeypatch):
    study_id = _study(studio_ctx, tmp_path, "disagreement", monkeypatch)
    items = _positions(studio_ctx, study_id)
    one, two = _users(studio_ctx, "ann1", "ann2")
    _vote_for(studio_ctx, study_id, items[0], one, "b")   # judge says a: disagrees
    _vote_for(studio_ctx, study_id, items[2], one, "a")   # agrees
    _vote_for(studio_ctx, study_id, items[3], one, "a")   # a human tie for first place: no majority, not compared
    _vote_for(studio_ctx, study_id, items[3], two, "b")
    _vote_for(studio_ctx, study_id, items[1], one, "b")   # the judge split: no verdict to compare
    with studio_ctx.sessions() as s:
        judge = study_results(s, study_id)["judge"]
    assert judge["judged"] == N and judge["orders_disagree"] == len(BIASED)
    assert judge["orders_disagree_rate"] == pytest.approx(len(BIASED) / N)
    assert (judge["compared"], judge["humans_disagree"]) == (2, 1) and judge["humans_disagree_rate"] == 0.5
    assert judge["queue_order"] == "disagreement"


def test_a_disagreement_queue_needs_a_judge(studio_ctx, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "q", "response": "r"}) + "\n")
    with session_scope(studio_ctx.sessions) as s:
        ds = import_dataset(s, data, test_fraction=0.0)
        with pytest.raises(InvalidInput, match="judge endpoint"):
            study_service.create_study(s, name="x", model_a={"responses": str(data)}, model_b={"responses": str(data)},
                                       dataset_id=ds.id, queue_order="disagreement")
