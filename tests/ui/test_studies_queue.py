"""A study queue ordered by the judge's disagreements, in the browser: a researcher creates a study with the
local dev server as its judge and the queue order "Judge disagreements first"; the worker builds the items
and the judge rates each in both orders (on two prompts the dev server is made to prefer whichever answer
it reads first, so its two orders disagree there); the results say how often; an annotator is then shown
those two items first, in their order, and only then the rest. A judge launched with a cost cap (a priced
endpoint) pauses before a verdict that could pass it, says so on the study's job panel, and judges the rest
once resumed there with a raised cap."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import ADMIN, ANNOTATOR, LONG, choose, login, open_tab, settle, shot

pytestmark = pytest.mark.slow
TOPICS = ["tides", "volcanoes", "rainbows", "glaciers", "comets", "deserts"]
BIASED = {1, 4}  # the judge prefers whichever answer it reads first: its two orders disagree


def _prompt(i: int) -> str:
    return f"Queue test {i}: explain {TOPICS[i]} to a child."


def _files(studio, tmp_path) -> tuple[int, str, str]:
    """A dataset of the prompts (no test split: the study takes them all) and each model's answers as a file."""
    from app.db.session import session_scope
    from app.services.datasets import import_dataset

    prompts, a, b = (tmp_path / f"{n}.jsonl" for n in ("queue-prompts", "queue-a", "queue-b"))
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": _prompt(i)}) + "\n" for i in range(len(TOPICS))))
    answers = {"a": "A long and careful answer about {}, with an example a child knows.", "b": "{}."}
    for path, text in ((a, answers["a"]), (b, answers["b"])):
        path.write_text("".join(json.dumps({"id": f"q{i}", "prompt": _prompt(i), "response": text.format(topic)})
                                + "\n" for i, topic in enumerate(TOPICS)))
    with session_scope(studio.ctx.sessions) as s:
        ds_id = import_dataset(s, prompts, name="queue-prompts", test_fraction=0.0).id
    return ds_id, str(a), str(b)



def _study_form(browser, studio, name: str, model_a: str, model_b: str):
    """The admin's Studies page with a new study's name, models, prompt set and item count filled in."""
    page = login(browser, studio, ADMIN)
    open_tab(page, "tab-studies")
    page.locator("#study-name input, #study-name textarea").first.fill(name)
    for elem_id, path in (("study-model-a", model_a), ("study-model-b", model_b)):
        box = page.locator(f"#{elem_id} input")
        box.fill(path)
        box.press("Enter")
    choose(page, "study-dataset", "queue-prompts")
    page.locator("#study-items input").fill(str(len(TOPICS)))
    return page

def test_an_annotator_gets_the_items_the_judges_orders_disagree_on_first(studio, browser, shots, tmp_path):
    ds_id, model_a, model_b = _files(studio, tmp_path)
    # The dev server's judge scores by length (the longer answer A wins in both orders), except on these prompts.
    studio.devserver.state.set_rules([{"match": TOPICS[i], "fault": "reply", "text": "9 2\nThe first is better."}
                                      for i in BIASED])
    before = len(studio.devserver.requests())
    try:
        page = _study_form(browser, studio, "disagreements first", model_a, model_b)
        choose(page, "study-judge", "devserver")
        page.locator("#study-queue-order").get_by_label("Judge disagreements first").check()
        page.locator("#study-create").click()
        header, results = page.locator("#study-header"), page.locator("#study-results")
        expect(header).to_contain_text("disagreements first", timeout=LONG)
        # The job panel follows the job; once the judge is done, the results say what it found.
        expect(results).to_contain_text("queue: judge disagreements first", timeout=LONG)
        expect(results).to_contain_text(f"{len(BIASED)} of {len(TOPICS)} items judged in both orders")
        expect(header.locator(".badge")).to_have_text("open")
        shot(page, shots, "study-queue-judge")
    finally:
        studio.devserver.state.set_rules([])
    assert len(studio.devserver.requests()) - before == 2 * len(TOPICS)  # each item judged in both orders

    annotator = login(browser, studio, ANNOTATOR, "/annotate/")
    study_label = page.locator("#study-pick input").input_value().split()[0].replace("#", "Study ")
    choose(annotator, "ann-study", study_label)
    prompt = annotator.locator("#ann-prompt")
    order = sorted(BIASED) + [min(set(range(len(TOPICS))) - BIASED)]  # disputed, then the first other
    for k, i in enumerate(order):
        expect(prompt).to_contain_text(_prompt(i), timeout=LONG)
        if k == 0:
            settle(annotator)  # no event in flight: the item as the annotator reads it
            shot(annotator, shots, "study-queue-annotator", full_page=False)
        annotator.keyboard.press("2")  # a tie: the next item comes
    expect(prompt).not_to_contain_text(_prompt(order[-1]), timeout=LONG)
    annotator.context.close()
    page.context.close()


def test_a_capped_judge_pauses_on_the_studies_page_and_resumes_with_a_raised_cap(studio, browser, shots, tmp_path):
    from app.db.session import session_scope
    from app.services.endpoints import create_endpoint

    ds_id, model_a, model_b = _files(studio, tmp_path)
    with session_scope(studio.ctx.sessions) as s:  # USD 1000 / 2000 per million tokens: a verdict costs dimes
        create_endpoint(s, studio.ctx.settings, name="priced-study-judge", base_url=studio.devserver.base_url,
                        model="judge-priced", api_key="sk-test-not-a-real-key", price_prompt=1000.0,
                        price_completion=2000.0, concurrency=1, max_tokens=64)
    page = _study_form(browser, studio, "capped judge", model_a, model_b)
    choose(page, "study-judge", "priced-study-judge")
    expect(page.locator("#study-projection")).to_contain_text("$1000.0/M in", timeout=LONG)
    cap = page.locator("#study-cap input")
    cap.fill("0.5")
    cap.press("Tab")
    page.locator("#study-create").click()
    job = page.locator("#study-job")
    expect(job).to_contain_text("paused", timeout=LONG)  # pushed by the follower: the job moved on its own
    expect(job).to_contain_text("of the $0.500000 cap; the next verdict could cost up to $")
    expect(job).to_contain_text("would pass it; raise the cap to resume")
    shot(page, shots, "study-judge-paused")

    resume_cap = page.locator("#study-resume-cap input")
    resume_cap.fill("1000")
    resume_cap.press("Tab")
    page.locator("#study-resume").click()
    results = page.locator("#study-results")
    expect(results).to_contain_text(f"0 of {len(TOPICS)} items judged in both orders", timeout=LONG)
    expect(page.locator("#study-resume")).to_be_hidden()
    page.context.close()
