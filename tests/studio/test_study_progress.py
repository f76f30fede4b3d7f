"""Study generation reports its progress like a collection: done/total answers (both models), rate and
ETA on the job row while it runs, shown by the jobs widget; it calls no paid endpoint, so it costs 0."""

from __future__ import annotations

import json

import pytest

from app.db.models import Job
from app.db.session import session_scope
from app.services import jobs as job_service
from app.services import progress as progress_service
from app.services import studies as study_service
from app.services.costs import project_study
from app.services.datasets import import_dataset
from app.services.lifecycle import claim_row
from app.ui.widgets.jobs import job_panel, projection_panel

N = 25


def test_study_generation_writes_done_total_rate_and_eta_as_it_goes(studio_ctx, tmp_path, monkeypatch):
    data = tmp_path / "answers.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"question {i}", "response": f"answer {i}"}) + "\n"
                            for i in range(N)))
    with session_scope(studio_ctx.sessions) as s:
        ds = import_dataset(s, data, test_fraction=0.0)
        _, job = study_service.create_study(s, name="progress", model_a={"responses": str(data)},
                                            model_b={"responses": str(data)}, dataset_id=ds.id)
        job_id = job.id
    with session_scope(studio_ctx.sessions) as s:
        claim = claim_row(s, Job, job_id, "test", 60)

    seen = []  # (done, total) of every write to the job row, as a browser polling it would see them
    real_write = progress_service.JobProgress.write

    def recording(self):
        real_write(self)
        with studio_ctx.sessions() as s:
            row = s.get(Job, job_id)
            seen.append((row.done, row.total, (row.stats or {}).get("rate_per_s")))
    monkeypatch.setattr(progress_service.JobProgress, "write", recording)

    assert job_service.run_study_generation(studio_ctx, job_id, claim)["items"] == N
    assert seen[-1][:2] == (2 * N, 2 * N)                        # both models' answers, counted
    assert any(0 < done < 2 * N for done, _, _ in seen)           # written while it ran, not only at the end
    assert all(total == 2 * N and rate is not None for _, total, rate in seen)
    with studio_ctx.sessions() as s:
        view = job_service.job_view(s.get(Job, job_id))
    assert view["cost"] == 0 and view["stats"]["requests"] == 0   # local models: nothing paid
    html = job_panel(view, "generation")
    assert f"{2 * N:,} / {2 * N:,}" in html and "/s" in html and "ETA" in html  # still running: an ETA


def test_the_study_projection_says_local_models_cost_nothing():
    p = project_study()
    assert (p["requests"], p["cost_max_usd"]) == (0, 0.0)
    html = projection_panel(p)
    assert "nothing to pay" in html and "generate locally" in html and "answers cached" not in html


def test_a_study_with_a_judge_projects_its_verdicts_in_both_orders(studio_ctx):
    from app.db.session import session_scope
    from app.services.endpoints import create_endpoint

    with session_scope(studio_ctx.sessions) as s:
        ep = create_endpoint(s, studio_ctx.settings, name="judge", base_url="http://127.0.0.1:9/v1", model="j",
                             api_key="k", price_prompt=1.0, price_completion=2.0, max_tokens=100)
        p = project_study(s, studio_ctx.settings, judge_endpoint_id=ep.id, n_items=10, max_new_tokens=50)
    assert p["requests"] == 20                                     # each item, both orders
    assert p["completion_tokens_max"] == 20 * 100                 # at the judge's max_tokens
    assert p["prompt_tokens"] > 20 * 2 * 50                        # two answers at their bound, plus the template
    assert p["cost_max_usd"] == pytest.approx((p["prompt_tokens"] * 1.0 + 2000 * 2.0) / 1e6)
    assert "nothing to pay" not in projection_panel(p)
