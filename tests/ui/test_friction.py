"""The friction of a first afternoon (issue 19) and stored XSS (issue 18), in the browser: a password is
changed in the dashboard and reset by an admin; authenticated pages are not cached; the login page has
its icon; skipped items are kept apart and offered at the end; names, prompts and responses holding
HTML and script show as text on every page, and the chat shows what the user typed."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import ADMIN, ANNOTATOR, LONG, PASSWORD, VIEWPORT, choose, login, open_tab, shot

pytestmark = pytest.mark.slow
SHORT = 60_000
XSS = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def _log_in(browser, studio, user: str, password: str):
    page = browser.new_context(viewport=VIEWPORT, base_url=studio.url).new_page()
    page.goto("/login?next=/ui/")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("button[type=submit]")
    return page


def test_passwords_change_in_the_dashboard_and_pages_are_not_cached(studio, browser, shots):
    from app.db.session import session_scope
    from app.services.users import create_user

    with session_scope(studio.ctx.sessions) as s:
        create_user(s, "carol", "researcher", PASSWORD)
    assert browser.new_context(base_url=studio.url).request.get("/favicon.ico").ok  # the login page's icon

    page = login(browser, studio, "carol")
    assert "no-store" in page.request.get("/ui/").headers.get("cache-control", "")  # Back after logout: no page
    open_tab(page, "tab-admin")
    page.locator("#my-account").get_by_text("My account").click()
    page.locator("#my-current input").fill("not-my-password")
    page.locator("#my-new input").fill("carol-new-pass-1")
    page.locator("#my-repeat input").fill("carol-new-pass-1")
    page.locator("#my-change").click()
    result = page.locator("#my-result")
    expect(result).to_contain_text("current password is not right", timeout=SHORT)
    page.locator("#my-current input").fill(PASSWORD)
    page.locator("#my-change").click()
    expect(result).to_contain_text("Password changed", timeout=SHORT)
    shot(page, shots, "my-account", full_page=False)
    page.context.close()
    fresh = _log_in(browser, studio, "carol", "carol-new-pass-1")
    expect(fresh.locator(".gad-header")).to_contain_text("carol", timeout=LONG)
    fresh.context.close()

    admin = login(browser, studio, ADMIN)  # an admin resets it
    open_tab(admin, "tab-admin")
    choose(admin, "user-pick", "carol")
    admin.locator("#user-reset input").fill("reset-by-admin-1")
    admin.locator("#user-update").click()
    expect(admin.locator("#user-result")).to_contain_text("new password set", timeout=SHORT)
    admin.context.close()
    again = _log_in(browser, studio, "carol", "reset-by-admin-1")
    expect(again.locator(".gad-header")).to_contain_text("carol", timeout=LONG)
    again.context.close()


def _study_with_items(studio, n: int) -> int:
    from app.db.models import Study, StudyItem
    from app.db.session import session_scope
    from app.enums import StudyStatus

    with session_scope(studio.ctx.sessions) as s:
        study = Study(name="skips", model_a=json.dumps({"label": "a"}), model_b=json.dumps({"label": "b"}),
                      status=StudyStatus.open, annotators_per_item=1, guidelines="", settings={})
        s.add(study)
        s.flush()
        s.add_all(StudyItem(study_id=study.id, position=k, prompt=f"Question number {k}", response_a=f"A{k}",
                            response_b=f"B{k}", a_on_left=True, leaks=[]) for k in range(1, n + 1))
        return study.id


def test_skipped_items_are_kept_apart_and_offered_at_the_end(studio, browser, shots):
    study = _study_with_items(studio, 3)
    page = login(browser, studio, ANNOTATOR, "/annotate/")
    choose(page, "ann-study", f"Study {study}")
    prompt, progress = page.locator("#ann-prompt"), page.locator("#ann-progress")
    expect(prompt).to_contain_text("Question number 1", timeout=LONG)
    page.keyboard.press("s")  # skip the first
    expect(prompt).to_contain_text("Question number 2", timeout=SHORT)
    expect(progress).to_contain_text("0 rated · 1 skipped")  # a skip is not a rating
    page.keyboard.press("1")
    expect(prompt).to_contain_text("Question number 3", timeout=SHORT)
    page.keyboard.press("3")
    expect(progress).to_contain_text("2 rated · 1 skipped", timeout=SHORT)
    review = page.locator("#ann-review")
    expect(review).to_be_visible()  # the skipped one is offered, not forgotten
    shot(page, shots, "annotator-skips", full_page=False)
    review.click()
    expect(prompt).to_contain_text("Question number 1", timeout=SHORT)
    page.keyboard.press("2")
    expect(prompt).to_contain_text("All done", timeout=SHORT)
    expect(progress).to_contain_text("3 rated")
    expect(review).to_be_hidden()
    page.context.close()


def test_html_and_script_in_names_and_texts_show_as_text_everywhere(studio, browser, shots, finished_run,
                                                                    tmp_path):
    """Stored XSS: every name a user gives and every text a model or a file brings, holding markup, on every
    page. A dialog (alert) anywhere fails the test; the markup must be readable as text. (User names
    cannot hold markup: create_user allows letters, digits and . _ @ - only.)"""
    from app.db.models import Run, Study, StudyItem
    from app.db.session import session_scope
    from app.enums import StudyStatus
    from app.services.datasets import import_dataset

    path = tmp_path / "xss.jsonl"
    path.write_text(json.dumps({"id": "x1", "prompt": f"prompt {XSS}", "response": f"answer {XSS}"}) + "\n"
                    + json.dumps({"id": "x2", "prompt": "plain", "response": "plain"}) + "\n")
    with session_scope(studio.ctx.sessions) as s:
        ds = import_dataset(s, path, name=f"set {XSS}").id
        s.get(Run, finished_run).name = f"run {XSS}"
        study = Study(name=f"study {XSS}", model_a=json.dumps({"label": f"model {XSS}"}),
                      model_b=json.dumps({"label": "b"}), status=StudyStatus.open, annotators_per_item=1,
                      guidelines=f"guide {XSS}", settings={})
        s.add(study)
        s.flush()
        s.add(StudyItem(study_id=study.id, position=1, prompt=f"prompt {XSS}", response_a=f"left {XSS}",
                        response_b=f"right {XSS}", a_on_left=True, leaks=[]))
        study_id = study.id

    dialogs = []
    page = login(browser, studio, ADMIN)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    choose(page, "dataset-pick", f"#{ds} ")
    expect(page.locator("#dataset-summary")).to_contain_text(XSS, timeout=LONG)  # the name, as text
    expect(page.locator("#dataset-preview")).to_contain_text("onerror", timeout=SHORT)
    for tab in ("tab-new-run", "tab-runs", "tab-evaluate", "tab-studies", "tab-chat", "tab-admin"):
        open_tab(page, tab)
        page.wait_for_function("() => !document.querySelector('.pending, .generating')", timeout=LONG)
    open_tab(page, "tab-runs")
    open_tab(page, "tab-runs-list")
    expect(page.locator("#runs-table")).to_contain_text(f"run {XSS}", timeout=LONG)
    open_tab(page, "tab-run")
    choose(page, "run-pick", f"#{finished_run} ")
    expect(page.locator("#run-header")).to_contain_text(f"run {XSS}", timeout=LONG)
    open_tab(page, "tab-studies")
    choose(page, "study-pick", f"#{study_id} ")
    expect(page.locator("#study-header")).to_contain_text(f"study {XSS}", timeout=LONG)

    # the chat shows what the user typed, markup included, as text
    open_tab(page, "tab-chat")
    choose(page, "chat-model-1", "base/tiny")
    page.locator("#chat-max-tokens input[type=number]").fill("16")
    page.locator("#chat-max-tokens input[type=number]").press("Enter")
    typed = f"Is this bold? <b>no</b> [link](javascript:alert(3)) {XSS}"
    page.locator("#chat-input textarea").fill(typed)
    page.locator("#chat-input textarea").press("Enter")
    user_turn = page.locator("#chat-bot-1 .message.user, #chat-bot-1 [data-testid='user']").last
    expect(user_turn).to_contain_text(typed, timeout=LONG)
    assert user_turn.locator("b, a[href^='javascript'], img, script").count() == 0

    annotator = login(browser, studio, ANNOTATOR, "/annotate/")
    annotator.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    choose(annotator, "ann-study", f"Study {study_id}")
    expect(annotator.locator("#ann-left")).to_contain_text(f"left {XSS}", timeout=LONG)
    shot(page, shots, "xss-as-text", full_page=False)
    assert dialogs == [], dialogs
    assert page.locator("img[src=x]").count() == 0 and annotator.locator("img[src=x]").count() == 0
    annotator.context.close()
    with session_scope(studio.ctx.sessions) as s:  # later tests look runs up by name
        s.get(Run, finished_run).name = "fixture run"
    page.context.close()
