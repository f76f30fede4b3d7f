"""Evaluation and study-generation jobs through the services (real server, tiny model, real DB)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.db.models import Evaluation, Job, JudgeScore, Study, StudyItem, User
from app.db.session import session_scope
from app.devserver import DevServer
from app.services.datasets import import_dataset
from app.services.endpoints import create_endpoint
from app.services.jobs import create_job, run_evaluation, run_study_generation
from app.services.lifecycle import claim_row
from app.services.studies import create_study
from app.services.study_queue import blind_view, cast_vote
from app.services.study_results import study_results

pytestmark = pytest.mark.slow


def _claim(ctx, job_id):
    with session_scope(ctx.sessions) as s:
        return claim_row(s, Job, job_id, "test", 60)


def test_evaluation_job_stores_scores(studio_ctx, tiny_model):
    with DevServer() as srv:
        with session_scope(studio_ctx.sessions) as s:
            judge = create_endpoint(s, studio_ctx.settings, name="judge", base_url=srv.base_url, model="j", api_key="k")
            job_id = create_job(s, "evaluate", {"models": [{"name": "tiny", "path": str(tiny_model)}],
                                                "sets": ["vicuna"], "judge_endpoint_id": judge.id, "limit": 3,
                                                "max_new_tokens": 6}).id
        result = run_evaluation(studio_ctx, job_id, _claim(studio_ctx, job_id))
    assert result["rows"] == 1
    with studio_ctx.sessions() as s:
        ev = s.scalar(select(Evaluation))
        assert ev.model_name == "tiny" and ev.set_name == "vicuna" and 0 < ev.score < 100
        assert s.scalar(select(func.count()).select_from(JudgeScore)) == 3


def test_study_generation_shuffles_and_records_sides(studio_ctx, tiny_model, tmp_path):
    data = tmp_path / "p.jsonl"
    data.write_text("".join(f'{{"prompt": "question {i}"}}\n' for i in range(12)))
    with session_scope(studio_ctx.sessions) as s:
        ds = import_dataset(s, data, test_fraction=0.5)
        study, job = create_study(s, name="A vs B", model_a={"path": str(tiny_model)},
                                  model_b={"path": str(tiny_model)}, dataset_id=ds.id, max_new_tokens=4)
        s.add(User(name="ann", role="annotator"))
        study_id, job_id = study.id, job.id
    claim = _claim(studio_ctx, job_id)
    assert run_study_generation(studio_ctx, job_id, claim)["items"] == 6   # the test split
    assert run_study_generation(studio_ctx, job_id, claim)["items"] == "already generated"  # idempotent
    with studio_ctx.sessions() as s:
        items = s.scalars(select(StudyItem).where(StudyItem.study_id == study_id).order_by(StudyItem.position)).all()
        assert len(items) == 6 and s.get(Study, study_id).status == "open"
        sides = {i.a_on_left for i in items}
        assert sides == {True, False}                  # both orders occur (seeded shuffle)
        ann = s.scalar(select(User))
        for item in items:
            view = blind_view(item)
            cast_vote(s, item.id, ann.id, "left")
            assert view["left"] == (item.response_a if item.a_on_left else item.response_b)
        res = study_results(s, study_id)
        assert res["win"] == sum(i.a_on_left for i in items) and res["votes"] == 6
