"""Cost projection and the per-job cost cap: a tiny cap pauses a collection against the real local
OpenAI-compatible dev server, a raised cap resumes it to the end, and the ledger is exact."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.db.models import Job, Prompt, TeacherResponse
from app.db.session import session_scope
from app.devserver import DevServer
from app.errors import InvalidInput
from app.services.costs import project
from app.services.datasets import import_dataset
from app.services.endpoints import create_endpoint
from app.services.jobs import carry_out_job, create_collect_job, job_view, resume_job, run_collect
from gad.llm.api_client import Endpoint
from gad.llm.cache import cache_key


def test_projection_counts_cached_answers_as_free():
    ep = Endpoint(base_url="http://127.0.0.1:9/v1", model="gpt-4o-mini", max_tokens=100)  # $0.15 / $0.60 per M
    asks = [[{"role": "user", "content": "x" * 400}], [{"role": "user", "content": "y" * 40}],
            [{"role": "user", "content": "x" * 400}]]                                 # a duplicate: asked once
    cached = {cache_key(ep, asks[1]): {"status": "ok", "response": "hi"}}
    p = project(asks, ep, cached)
    assert (p["requests"], p["cached"]) == (1, 2)
    assert p["prompt_tokens"] == 400 // 4 + 8 and p["completion_tokens_max"] == 100
    assert p["cost_max_usd"] == pytest.approx((108 * 0.15 + 100 * 0.6) / 1e6, rel=1e-12)
    assert project(asks, ep, {**cached, cache_key(ep, asks[0]): {"status": "ok"}})["cost_max_usd"] == 0


@pytest.mark.slow
def test_tiny_cap_pauses_a_collection_and_a_raised_cap_finishes_it(studio_ctx, tmp_path):
    data = tmp_path / "p.jsonl"
    data.write_text("".join(f'{{"prompt": "question number {i} about costs"}}\n' for i in range(30)))
    with DevServer() as srv:
        with session_scope(studio_ctx.sessions) as s:
            ep = create_endpoint(s, studio_ctx.settings, name="paid", base_url=srv.base_url, model="m", api_key="k",
                                 price_prompt=1000.0, price_completion=2000.0, concurrency=2)
            ds = import_dataset(s, data)
            job_id = create_collect_job(s, dataset_id=ds.id, endpoint_id=ep.id, max_cost_usd=1e-9).id

        assert carry_out_job(studio_ctx, job_id, "test", run_collect) == "paused"
        with studio_ctx.sessions() as s:
            job = s.get(Job, job_id)
            view = job_view(job)
            paid = s.scalar(select(func.sum(TeacherResponse.cost)))
            assert view["status"] == "paused" and "cap" in view["message"] and view["max_cost_usd"] == 1e-9
            assert 0 < job.done < 30 and job.cost >= 1e-9
            assert job.stats["requests"] == len(srv.requests()) <= 2       # the cap stops new requests at once
            assert job.cost == pytest.approx(paid, rel=1e-12)
            with pytest.raises(InvalidInput):
                resume_job(s, job_id, job.cost / 2)                            # below the spend: refused

        with session_scope(studio_ctx.sessions) as s:
            resume_job(s, job_id, 1000.0)
        assert carry_out_job(studio_ctx, job_id, "test", run_collect) == "succeeded"
        with studio_ctx.sessions() as s:
            job = s.get(Job, job_id)
            rows = s.execute(select(func.count(), func.sum(TeacherResponse.cost),
                                    func.sum(TeacherResponse.prompt_tokens),
                                    func.sum(TeacherResponse.completion_tokens))).one()
            assert job.status == "succeeded" and job.done == job.total == 30
            assert len(srv.requests()) == 30 == rows[0]                       # every prompt paid for exactly once
            assert job.stats["requests"] == 30
            assert job.cost == pytest.approx(rows[1], rel=1e-12) and job.cost > 1e-9
            assert (job.stats["prompt_tokens"], job.stats["completion_tokens"]) == (rows[2], rows[3])
            assert s.scalar(select(func.count()).select_from(Prompt).where(Prompt.teacher_response.is_(None))) == 0
