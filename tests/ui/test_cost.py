"""The cost preview and cap in the browser: before a teacher collection from a priced endpoint on the
dev server, the collect tab shows what it would send and cost; a tiny cap pauses the collection with a
message naming the spend and the cap; a raised cap resumes it to the end, each prompt paid once."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from app.db.models import Job, TeacherResponse
from app.db.session import session_scope
from app.services.costs import project_collect, project_evaluation
from app.services.datasets import import_dataset
from app.services.endpoints import create_endpoint
from tests.ui.conftest import ADMIN, LONG, choose, login, open_tab, shot

pytestmark = pytest.mark.slow
N = 12


def _priced_endpoint(studio) -> int:
    """The dev server as a priced teacher and judge: USD 1000 / 2000 per million tokens, one request at a
    time (so the first answer already costs more than a tiny cap), at most 64 completion tokens."""
    if "priced_endpoint" not in studio.shared:
        with session_scope(studio.ctx.sessions) as s:
            studio.shared["priced_endpoint"] = create_endpoint(
                s, studio.ctx.settings, name="priced-dev", base_url=studio.devserver.base_url, model="teacher-priced",
                api_key="sk-test-not-a-real-key", price_prompt=1000.0, price_completion=2000.0, concurrency=1,
                max_tokens=64).id
    return studio.shared["priced_endpoint"]


def test_collect_tab_projects_the_cost_and_a_cap_pauses_then_resumes(studio, browser, shots, tmp_path):
    ep_id = _priced_endpoint(studio)
    data = tmp_path / "cost-prompts.jsonl"  # fresh prompts: nothing cached
    data.write_text("".join(f'{{"prompt": "Cost preview question {i}: name a colour."}}\n' for i in range(N)))
    with session_scope(studio.ctx.sessions) as s:
        ds_id = import_dataset(s, data, name="cost-prompts").id
    with studio.ctx.sessions() as s:
        expected = project_collect(s, studio.ctx.settings, dataset_id=ds_id, endpoint_id=ep_id)
    assert expected["requests"] == N and expected["cost_max_usd"] > 0.01

    page = login(browser, studio, ADMIN)
    choose(page, "dataset-pick", "cost-prompts")
    expect(page.locator("#dataset-summary")).to_contain_text("with teacher response", timeout=LONG)
    page.get_by_role("tab", name="Teacher collection").click()
    choose(page, "collect-endpoint", "priced-dev")
    projection = page.locator("#collect-projection")
    expect(projection).to_contain_text("$1000.0/M in", timeout=LONG)      # this endpoint's, before any launch
    for text in ("requests", f"{N:,}", "prompt tokens", f'≈{expected["prompt_tokens"]:,}', "completion tokens",
                 f'≤{N * 64:,}', f'≤${expected["cost_max_usd"]:.4f}'):
        expect(projection).to_contain_text(text)
    with studio.ctx.sessions() as s:
        jobs = s.scalars(select(Job).where(Job.kind == "collect")).all()
        assert not [j for j in jobs if j.params["dataset_id"] == ds_id]      # a preview only: nothing launched

    cap = page.locator("#collect-cap input")
    cap.fill("0.01")
    cap.press("Tab")
    page.locator("#collect-start").click()
    job = page.locator("#collect-job")
    expect(job).to_contain_text("paused", timeout=LONG)
    expect(job).to_contain_text("of the $0.010000 cap; raise the cap to resume")
    with studio.ctx.sessions() as s:
        row = s.scalars(select(Job).where(Job.kind == "collect").order_by(Job.id.desc())).first()
        assert row.status == "paused" and row.params["dataset_id"] == ds_id and 0 < row.done < N
        expect(job).to_contain_text(f"spent ${row.cost:.6f}")               # the exact spend, named
    shot(page, shots, "cost_cap")

    cap.fill("1000")
    cap.press("Tab")
    page.locator("#collect-resume").click()
    expect(job).to_contain_text("succeeded", timeout=LONG)
    expect(job).to_contain_text(f"{N} answered")
    with studio.ctx.sessions() as s:
        row = s.get(Job, row.id)
        paid, asked = s.execute(select(func.sum(TeacherResponse.cost), func.count())
                                .where(TeacherResponse.endpoint_id == ep_id)).one()
        assert row.status == "succeeded" and row.done == N and asked == N   # every prompt paid for once
        assert row.cost == pytest.approx(paid, rel=1e-12)
    expect(job).to_contain_text(f"${row.cost:.4f}")                          # the ledger's figure on the page
    page.context.close()


def test_evaluate_page_projects_the_judges_cost_before_launch(studio, browser):
    _priced_endpoint(studio)
    page = login(browser, studio, ADMIN)
    open_tab(page, "tab-evaluate")
    projection = page.locator("#eval-projection")
    expect(projection).to_contain_text("Choose prompt sets and a judge", timeout=LONG)
    page.get_by_label("vicuna").check()
    limit = page.locator("#eval-limit input, #eval-limit textarea").first
    limit.fill("3")
    limit.press("Enter")
    choose(page, "eval-judge", "priced-dev")
    # 3 references, then a verdict for each of the 3 prompts (one model: none chosen yet counts as one)
    expect(projection).to_contain_text("$1000.0/M in", timeout=LONG)
    with studio.ctx.sessions() as s:
        expected = project_evaluation(s, studio.ctx.settings, n_models=1, sets=["vicuna"], limit=3,
                                      judge_endpoint_id=_priced_endpoint(studio))
    assert expected["requests"] == 6
    for text in ("requests", "prompt tokens", f'≈{expected["prompt_tokens"]:,}', f"≤{6 * 64:,}",
                 f'≤${expected["cost_max_usd"]:.4f}'):
        expect(projection).to_contain_text(text)
    expect(page.locator("#eval-cap input")).to_be_visible()
    page.context.close()
