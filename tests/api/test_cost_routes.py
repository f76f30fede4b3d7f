"""The cost projection route and the evaluation cost cap over HTTP: a real server on loopback, the local
OpenAI-compatible dev server as a priced judge, a file of ready answers as the judged model. The job is
carried out in this process (the `studio` fixture has no worker), as a worker would."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.db.models import TeacherResponse
from app.devserver import DevServer
from app.services.jobs import carry_out_job, run_evaluation
from gad.llm.evaluate import load_set

N = 3  # prompts of the built-in set judged


@pytest.fixture(scope="module")
def judge(studio):
    """A priced endpoint on the dev server (USD 1000 / 2000 per million tokens: one answer beats a tiny cap)."""
    with DevServer() as srv, studio.client("admin") as c:
        r = c.post("/api/endpoints", json={"name": "priced judge", "base_url": srv.base_url, "model": "judge-dev",
                                           "api_key": "sk-test", "params": {"price_prompt": 1000.0,
                                                                            "price_completion": 2000.0,
                                                                            "concurrency": 1, "max_tokens": 64}})
        assert r.status_code == 201, r.text
        yield srv, r.json()["id"]


def test_projection_route_counts_requests_tokens_and_cost(studio, judge):
    _, judge_id = judge
    with studio.client("researcher") as c:
        one = c.get("/api/jobs/projection", params={"kind": "evaluate", "endpoint_id": judge_id, "sets": "vicuna",
                                                    "limit": N, "n_models": 1, "max_new_tokens": 16})
        assert one.status_code == 200, one.text
        p = one.json()
        # a reference per prompt, then a verdict per model and prompt; completions at the endpoint's max_tokens
        assert (p["kind"], p["requests"], p["cached"]) == ("evaluate", 2 * N, 0)
        assert p["completion_tokens_max"] == 2 * N * 64 and p["priced"] and p["prompt_tokens"] > 0
        assert p["cost_max_usd"] == pytest.approx((p["prompt_tokens"] * 1000 + 2 * N * 64 * 2000) / 1e6)
        two = c.get("/api/jobs/projection", params={"kind": "evaluate", "endpoint_id": judge_id, "sets": "vicuna",
                                                    "limit": N, "n_models": 2, "both_orders": True,
                                                    "max_new_tokens": 16}).json()
        assert two["requests"] == N + 2 * 2 * N and two["cost_max_usd"] > p["cost_max_usd"]
        study = c.get("/api/jobs/projection", params={"kind": "study"}).json()
        assert (study["requests"], study["cost_max_usd"], study["priced"]) == (0, 0.0, False)
        missing = c.get("/api/jobs/projection", params={"kind": "collect", "endpoint_id": judge_id})
        assert missing.status_code == 422 and "dataset_id" in missing.text
        unknown = c.get("/api/jobs/projection", params={"kind": "evaluate", "endpoint_id": judge_id,
                                                        "sets": "no-such-set"})
        assert unknown.status_code == 422 and "no-such-set" in unknown.text
    with studio.client("annotator") as c:
        assert c.get("/api/jobs/projection", params={"kind": "study"}).status_code == 403


def test_an_evaluation_cap_pauses_the_judge_and_a_raised_cap_finishes_it(studio, judge, tmp_path):
    srv, judge_id = judge
    answers = tmp_path / "ready.jsonl"
    answers.write_text("".join(json.dumps({"id": ex.id, "prompt": ex.prompt_text, "response": f"Answer {i}."}) + "\n"
                               for i, ex in enumerate(load_set("vicuna", N)[1])))
    body = {"models": [{"name": "ready", "responses": str(answers)}], "sets": ["vicuna"],
            "judge_endpoint_id": judge_id, "limit": N, "max_new_tokens": 16}
    with studio.client("researcher") as c:
        assert c.post("/api/evaluations", json={**body, "max_cost_usd": 0}).status_code == 422
        made = c.post("/api/evaluations", json={**body, "max_cost_usd": 1e-9})
        assert made.status_code == 202, made.text
        job_id = made.json()["id"]
        assert made.json()["max_cost_usd"] == 1e-9
        before = len(srv.requests())

        assert carry_out_job(studio.ctx, job_id, "test", run_evaluation) == "paused"
        paused = c.get(f"/api/jobs/{job_id}").json()
        assert paused["status"] == "paused" and "of the $0.000000 cap" in paused["message"]
        assert 0 < paused["cost"] and paused["stats"]["requests"] == len(srv.requests()) - before == 1
        assert c.get("/api/evaluations", params={"job_id": job_id}).json() == []  # no scores from a paused judge
        low = c.post(f"/api/jobs/{job_id}/resume", json={"max_cost_usd": paused["cost"] / 2})
        assert low.status_code == 422 and "raise the cap above" in low.text

        resumed = c.post(f"/api/jobs/{job_id}/resume", json={"max_cost_usd": 1000.0})
        assert resumed.status_code == 200 and resumed.json()["status"] == "queued"
        assert carry_out_job(studio.ctx, job_id, "test", run_evaluation) == "succeeded"
        done = c.get(f"/api/jobs/{job_id}").json()
        rows = c.get("/api/evaluations", params={"job_id": job_id}).json()
    assert done["status"] == "succeeded" and done["done"] == done["total"] == 2 * N
    assert len(rows) == 1 and rows[0]["model"] == "ready"
    assert len(srv.requests()) - before == done["stats"]["requests"] == 2 * N  # each judge answer paid once
    with studio.ctx.sessions() as s:
        paid = s.scalar(select(func.sum(TeacherResponse.cost)).where(TeacherResponse.endpoint_id == judge_id))
    assert done["cost"] == pytest.approx(paid, rel=1e-12)  # the ledger is exact across the pause
