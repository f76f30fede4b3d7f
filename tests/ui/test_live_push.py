"""The run page follows a running run by server push: a step the worker writes appears on the page
without the browser asking again (no periodic /gradio_api/queue/join from a timer)."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.ui.conftest import ADMIN, LONG, choose, login, open_tab


def _running_run(studio, dataset_id) -> int:
    """A run marked running by hand (no worker trains it): the test writes its steps, as the worker would."""
    from app.db.models import utcnow
    from app.db.session import session_scope
    from app.services.presets import BUILTIN, CPU_SMOKE
    from app.services.runs import submit_from_dataset

    with session_scope(studio.ctx.sessions) as s:
        run = submit_from_dataset(s, studio.ctx.settings, {**BUILTIN[CPU_SMOKE], "method": "gad",
                                                           "student": str(studio.tiny_model)},
                                  dataset_id, name="pushed run")
        run.status, run.worker, run.claim = "running", "test:0", "test-claim"
        run.started_at = run.heartbeat_at = utcnow()
        s.flush()
        return run.id


def test_run_page_shows_new_steps_without_polling(studio, browser, dataset_id):
    from app.services.progress import DbProgress

    run_id = _running_run(studio, dataset_id)
    progress = DbProgress(studio.ctx.sessions, run_id, "test-claim")
    page = login(browser, studio, ADMIN)
    joins: list[str] = []
    page.on("request", lambda r: joins.append(r.post_data) if "/queue/join" in r.url else None)
    open_tab(page, "tab-runs")
    open_tab(page, "tab-run")
    choose(page, "run-pick", f"#{run_id} ")
    header = page.locator("#run-header")
    expect(header).to_contain_text(f"#{run_id} pushed run", timeout=LONG)

    # The first step reaches the page through the follower the page started when it opened the run.
    progress.stage_started("gad", 1, 10, 10)
    progress.metrics({"step": 3, "stage": "gad", "reward_mean": 0.25})
    expect(header).to_contain_text("step 3 / 10", timeout=LONG)

    # From now on the page asks nothing: the next step is pushed over the open stream.
    joins.clear()
    progress.metrics({"step": 4, "stage": "gad", "reward_mean": 0.5})
    expect(header).to_contain_text("step 4 / 10", timeout=30_000)
    assert joins == [], f"the page sent requests to see the new step: {joins}"

    # The run ends: the page shows it (the follower ends with the run).
    from app.db.models import Run
    from app.db.session import session_scope

    with session_scope(studio.ctx.sessions) as s:
        s.get(Run, run_id).status = "succeeded"
    expect(header).to_contain_text("succeeded", timeout=30_000)
    page.context.close()
