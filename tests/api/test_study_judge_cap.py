"""The study judge's cost cap over HTTP: a study created with a judge (the local OpenAI-compatible dev server,
priced) and a cap pauses its job before a verdict that could pass the cap, says so on the job, and a raised
cap given to POST /api/jobs/{id}/resume judges the rest, each verdict paid once. The job is carried out in
this process (the `studio` fixture has no worker), as a worker would."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.db.models import Study, TeacherResponse
from app.db.session import session_scope
from app.devserver import DevServer
from app.services.costs import request_bound
from app.services.datasets import import_dataset
from app.services.endpoints import get_endpoint, to_gad
from app.services.jobs import carry_out_job, run_study_generation
from app.services.study_judge import ORDERS
from gad.llm.judge import judge_messages

N = 5  # items; the judge asks 2 N verdicts


@pytest.fixture(scope="module")
def judge(studio):
    """A priced endpoint on the dev server (USD 1000 / 2000 per million tokens), one request at a time."""
    with DevServer() as srv, studio.client("admin") as c:
        r = c.post("/api/endpoints", json={"name": "priced study judge", "base_url": srv.base_url,
                                           "model": "study-judge-dev", "api_key": "sk-test",
                                           "params": {"price_prompt": 1000.0, "price_completion": 2000.0,
                                                      "concurrency": 1, "max_tokens": 64}})
        assert r.status_code == 201, r.text
        yield srv, r.json()["id"]


@pytest.fixture
def body(studio, judge, tmp_path) -> dict:
    prompts, a, b = (tmp_path / f"{n}.jsonl" for n in ("prompts", "a", "b"))
    prompts.write_text("".join(json.dumps({"prompt": f"Study cap question {i}: why is the sky blue?"}) + "\n"
                               for i in range(N)))
    a.write_text("".join(json.dumps({"prompt": f"Study cap question {i}: why is the sky blue?",
                                     "response": f"Rayleigh scattering, case {i}: short waves scatter most."}) + "\n"
                         for i in range(N)))
    b.write_text("".join(json.dumps({"prompt": f"Study cap question {i}: why is the sky blue?",
                                     "response": f"Reply {i}."}) + "\n" for i in range(N)))
    with session_scope(studio.ctx.sessions) as s:
        ds = import_dataset(s, prompts, test_fraction=0.0)
    return {"name": "capped judge", "model_a": {"responses": str(a)}, "model_b": {"responses": str(b)},
            "dataset_id": ds.id, "judge_endpoint_id": judge[1], "queue_order": "disagreement"}


def _bound(studio, judge_id: int, study_id: int) -> float:
    """What the job reckons one verdict can cost at most (the cap's margin), from the items it judges."""
    from app.db.models import StudyItem

    with studio.ctx.sessions() as s:
        endpoint = to_gad(get_endpoint(s, judge_id), studio.ctx.settings)
        items = s.scalars(select(StudyItem).where(StudyItem.study_id == study_id)).all()
        asks = [m for it in items for m in (judge_messages(it.prompt, it.response_a, it.response_b),
                                            judge_messages(it.prompt, it.response_b, it.response_a))]
    return request_bound(endpoint, asks)


def test_a_study_judge_pauses_before_passing_its_cap_and_resumes_under_a_raised_one(studio, judge, body):
    srv, judge_id = judge
    with studio.client("researcher") as c:
        assert c.post("/api/studies", json={**body, "max_cost_usd": 0}).status_code == 422
        no_judge = c.post("/api/studies", json={**body, "judge_endpoint_id": None, "queue_order": "standard",
                                                "max_cost_usd": 1.0})
        assert no_judge.status_code == 422 and "judge endpoint" in no_judge.text
        # Room for about three verdicts: a few are paid, then the next one could pass the cap.
        cap = 0.75
        made = c.post("/api/studies", json={**body, "max_cost_usd": cap})
        assert made.status_code == 202, made.text
        job_id, study_id = made.json()["job_id"], made.json()["study"]["id"]
        assert c.get(f"/api/jobs/{job_id}").json()["max_cost_usd"] == cap
        before = len(srv.requests())

        assert carry_out_job(studio.ctx, job_id, "test", run_study_generation) == "paused"
        paused = c.get(f"/api/jobs/{job_id}").json()
        asked = len(srv.requests()) - before
        bound = _bound(studio, judge_id, study_id)
        assert paused["status"] == "paused" and 0 < asked < 2 * N
        assert paused["stats"]["requests"] == asked and paused["done"] == asked and paused["total"] == 2 * N
        # The message names the spend, the cap and why it stopped before the cap was passed.
        assert f"spent ${paused['cost']:.6f} of the ${cap:.6f} cap" in paused["message"]
        assert f"the next verdict could cost up to ${bound:.6f} and would pass it" in paused["message"]
        with studio.ctx.sessions() as s:
            costs = list(s.scalars(select(TeacherResponse.cost).where(TeacherResponse.endpoint_id == judge_id)
                                   .order_by(TeacherResponse.id)))
            assert (s.get(Study, study_id).settings or {}).get("judge") is None  # no verdicts from a paused judge
        assert len(costs) == asked and paused["cost"] == pytest.approx(sum(costs), rel=1e-12)
        # Every verdict asked had room under the cap by its bound; the next one had none; the cap held.
        assert sum(costs[:-1]) + bound <= cap < sum(costs) + bound
        assert max(costs) <= bound and paused["cost"] <= cap
        # The study is open for votes meanwhile; its queue falls back to the dataset's order.
        assert c.get(f"/api/studies/{study_id}").json()["status"] == "open"

        low = c.post(f"/api/jobs/{job_id}/resume", json={"max_cost_usd": paused["cost"] / 2})
        assert low.status_code == 422 and "raise the cap above" in low.text
        resumed = c.post(f"/api/jobs/{job_id}/resume", json={"max_cost_usd": 100.0})
        assert resumed.status_code == 200 and resumed.json()["status"] == "queued"
        assert resumed.json()["max_cost_usd"] == 100.0
        assert carry_out_job(studio.ctx, job_id, "test", run_study_generation) == "succeeded"
        done = c.get(f"/api/jobs/{job_id}").json()
        results = c.get(f"/api/studies/{study_id}/results").json()
    assert done["done"] == done["total"] == 2 * N and done["result"]["judged"] == N
    assert len(srv.requests()) - before == done["stats"]["requests"] == 2 * N  # each verdict paid once
    with studio.ctx.sessions() as s:
        paid = list(s.scalars(select(TeacherResponse.cost).where(TeacherResponse.endpoint_id == judge_id)))
        verdicts = s.get(Study, study_id).settings["judge"]
    assert done["cost"] == pytest.approx(sum(paid), rel=1e-12)  # the ledger is exact across the pause
    assert len(verdicts) == N and all(v[o] == "a" for v in verdicts.values() for o in ORDERS)  # longer A wins
    assert results["judge"]["judged"] == N and results["judge"]["orders_disagree"] == 0
