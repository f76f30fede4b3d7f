"""The job panels of the Evaluate and Human evaluation pages follow their job by server push: progress the
worker writes appears on the page without the browser asking again (no periodic /gradio_api/queue/join
from a timer), and the end of the job is shown when it comes."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import ADMIN, LONG, choose, login, open_tab

pytestmark = pytest.mark.slow
CLAIM = "test-claim"
TOTAL = 10


def _running(studio, job_id: int) -> None:
    """The job marked running by hand (no worker carries it out): the test writes its progress, as a worker would."""
    from app.db.models import Job, utcnow
    from app.db.session import session_scope

    with session_scope(studio.ctx.sessions) as s:
        job = s.get(Job, job_id)
        job.status, job.worker, job.claim = "running", "test:0", CLAIM
        job.started_at = job.heartbeat_at = utcnow()


def _finish(studio, job_id: int, study_id: int | None = None) -> None:
    from app.db.models import Job, Study, utcnow
    from app.db.session import session_scope

    with session_scope(studio.ctx.sessions) as s:  # one transaction: the study opens as its job ends
        if study_id is not None:
            s.get(Study, study_id).status = "open"
        job = s.get(Job, job_id)
        job.status, job.finished_at, job.result = "succeeded", utcnow(), {}


def _watch_joins(page) -> list:
    joins: list[str] = []
    page.on("request", lambda r: joins.append(r.post_data) if "/queue/join" in r.url else None)
    return joins


def _pushed(studio, page, panel, job_id: int) -> None:
    """Answers counted by the job's progress reach the panel; the second batch without any request."""
    from app.services.progress import JobProgress

    progress = JobProgress(studio.ctx.sessions, job_id, CLAIM, TOTAL)
    for _ in range(3):
        progress({"status": "ok"})
    progress.write()
    expect(panel).to_contain_text(f"3 / {TOTAL}", timeout=LONG)  # through the follower the page started
    joins = _watch_joins(page)
    for _ in range(3):
        progress({"status": "ok"})
    progress.write()
    expect(panel).to_contain_text(f"6 / {TOTAL}", timeout=30_000)
    assert joins == [], f"the page sent requests to see the job's progress: {joins}"


def test_the_study_job_panel_follows_its_job_without_polling(studio, browser, dataset_id, tmp_path):
    from app.db.session import session_scope
    from app.services import studies as study_service
    from app.services.datasets import dataset_examples

    with studio.ctx.sessions() as s:
        examples = dataset_examples(s, dataset_id)
    answers = tmp_path / "pushed-answers.jsonl"
    answers.write_text("".join(json.dumps({"id": ex.id, "messages": ex.messages, "response": f"answer {i}"}) + "\n"
                               for i, ex in enumerate(examples)))
    with session_scope(studio.ctx.sessions) as s:
        study, job = study_service.create_study(s, name="pushed study", model_a={"responses": str(answers)},
                                                model_b={"responses": str(answers)}, dataset_id=dataset_id)
        study_id, job_id = study.id, job.id
    _running(studio, job_id)

    page = login(browser, studio, ADMIN)
    open_tab(page, "tab-studies")
    choose(page, "study-pick", f"#{study_id} ")
    header, panel = page.locator("#study-header"), page.locator("#study-job")
    expect(header).to_contain_text("pushed study", timeout=LONG)
    expect(panel).to_contain_text("running", timeout=LONG)
    _pushed(studio, page, panel, job_id)

    _finish(studio, job_id, study_id)  # the follower ends with the job, after one last redraw
    expect(header.locator(".badge")).to_have_text("open", timeout=30_000)
    expect(panel).not_to_contain_text(f"job #{job_id}")  # a finished generation leaves no panel behind
    page.context.close()


def test_the_evaluation_job_panel_follows_its_job_without_polling(studio, browser, tmp_path):
    from app.db.session import session_scope
    from app.services.jobs import create_evaluation_job

    with session_scope(studio.ctx.sessions) as s:
        job_id = create_evaluation_job(s, models=[{"name": "pushed model", "responses": str(tmp_path / "r.jsonl")}],
                                       sets=["vicuna"], judge_endpoint_id=studio.endpoint_id()).id
    _running(studio, job_id)

    page = login(browser, studio, ADMIN)
    open_tab(page, "tab-evaluate")  # the newest evaluation's panel, followed while it runs
    panel = page.locator("#eval-job")
    expect(panel).to_contain_text(f"job #{job_id}", timeout=LONG)
    _pushed(studio, page, panel, job_id)

    _finish(studio, job_id)
    expect(panel).to_contain_text("succeeded", timeout=30_000)
    # The picker's label carries the status: refreshed once the job ends, and the evaluation shown.
    expect(page.locator("#eval-pick input")).to_have_value(re.compile(rf"^#{job_id} · succeeded · pushed model"),
                                                           timeout=30_000)
    page.context.close()
