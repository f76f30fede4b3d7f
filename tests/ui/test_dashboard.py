"""End to end, as a user would: log in, upload datasets (and see a broken one rejected with its line and
field), collect teacher responses, launch a GAD run from the form and watch it train and finish, read
its rollouts, evaluate a checkpoint with the local judge, build a study and vote in it as a blind
annotator, chat with a checkpoint, manage endpoints and users. Each test saves a screenshot.

The tests run in file order and hand each other what they made (studio.shared), but each also runs
alone: the fixtures in conftest.py make what is missing through the services."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.ui.conftest import ADMIN, ANNOTATOR, LONG, choose, login, open_tab, shot, wait_for_app

pytestmark = pytest.mark.slow


def test_login_upload_validation_and_teacher_collection(studio, browser, shots, prompts_file, tmp_path):
    anonymous = browser.new_context(base_url=studio.url).new_page()
    anonymous.goto("/ui/")
    expect(anonymous).to_have_url(re.compile(r"/login\?next=/ui/"))  # no session: the login page
    anonymous.context.close()

    page = login(browser, studio, ADMIN)
    expect(page.locator(".gad-header")).to_contain_text(ADMIN)

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "a", "prompt": "Name three colours."}\n{"id": "b", "promt": "typo in the field"}\n')
    page.locator("#dataset-upload input[type=file]").set_input_files(str(broken))
    result = page.locator("#upload-result")
    expect(result).to_contain_text("broken.jsonl:2", timeout=LONG)  # the line ...
    expect(result).to_contain_text("no prompt field")               # ... and the field
    expect(result).to_contain_text("was not imported")
    shot(page, shots, "01-upload-error", full_page=False)

    share = page.locator("#upload-test-share input[type=number]")
    share.fill("0.25")  # 3 of the 12 prompts held out: the test split evaluations and studies use
    share.press("Enter")
    page.locator("#dataset-upload input[type=file]").set_input_files(str(prompts_file))
    expect(result).to_contain_text("Imported", timeout=LONG)
    expect(result).to_contain_text("12 prompts")
    dataset_id = int(re.search(r"dataset #(\d+)", result.inner_text()).group(1))

    choose(page, "dataset-pick", "alpaca-prompts")
    summary = page.locator("#dataset-summary")
    expect(summary).to_contain_text("with teacher response", timeout=LONG)
    page.get_by_role("tab", name="Teacher collection").click()
    expect(page.locator("#collect-endpoint input")).to_have_value(re.compile("devserver"))
    page.locator("#collect-start").click()
    job = page.locator("#collect-job")
    expect(job).to_contain_text("succeeded", timeout=LONG)
    expect(job).to_contain_text("12 answered")
    expect(summary).to_contain_text("100% of prompts", timeout=LONG)  # every prompt has its teacher response
    shot(page, shots, "02-dataset-collection")
    studio.shared["dataset_id"] = dataset_id
    page.context.close()


def test_launch_gad_run_from_the_form_and_watch_it_finish(studio, browser, shots, dataset_id):
    page = login(browser, studio, ADMIN)
    open_tab(page, "tab-new-run")
    choose(page, "run-dataset", f"#{dataset_id} ")
    choose(page, "run-student", "tiny")
    choose(page, "run-preset", "quick CPU smoke test")
    expect(page.locator("#cfg-steps input, #cfg-steps textarea").first).to_have_value("4")
    page.locator("#run-name input, #run-name textarea").first.fill("ui smoke run")
    expect(page.locator("#run-command")).to_contain_text("--batch-size 2", timeout=LONG)
    expect(page.locator("#run-checks")).to_contain_text("consistent")
    shot(page, shots, "03-new-run")
    page.get_by_role("tab", name="YAML").click()
    expect(page.locator("#run-yaml")).to_contain_text("group_size: 2")

    page.locator("#run-launch").click()
    header = page.locator("#run-header")
    expect(header).to_contain_text("ui smoke run", timeout=LONG)  # the run's page opens by itself
    run_id = int(re.search(r"#(\d+) ui smoke run", header.inner_text()).group(1))
    studio.shared["run_id"] = run_id
    # curves appear while it trains, and the page follows it to the end without a reload
    expect(page.locator("#run-curves .js-plotly-plot")).to_be_visible(timeout=LONG)
    expect(header).to_contain_text("succeeded", timeout=LONG)
    expect(header).to_contain_text("step 6 / 6")
    expect(page.locator("#run-curves")).to_contain_text("Discriminator accuracy")
    # the held-out check of D (the dataset holds out a test split; the smoke preset checks every 2 steps)
    expect(page.locator("#run-curves")).to_contain_text("Discriminator quality (held-out)")
    expect(header).to_contain_text("D held-out accuracy")
    expect(header).to_contain_text("identical to teacher")
    shot(page, shots, "04-run-curves")

    page.get_by_role("tab", name="Rollouts").click()
    rollouts = page.locator("#rollouts")
    expect(rollouts).to_contain_text("teacher response", timeout=LONG)
    expect(rollouts.locator(".student")).to_have_count(2)
    expect(rollouts.locator(".student.best")).to_have_count(1)
    shot(page, shots, "05-rollouts")

    open_tab(page, "tab-runs-list")
    expect(page.locator("#runs-table")).to_contain_text("ui smoke run", timeout=LONG)
    page.context.close()


def test_evaluate_a_checkpoint_with_the_local_judge(studio, browser, shots, finished_run, dataset_id):
    page = login(browser, studio, ADMIN)
    open_tab(page, "tab-runs")
    open_tab(page, "tab-run")
    choose(page, "run-pick", f"#{finished_run} ")
    expect(page.locator("#run-header")).to_contain_text(f"#{finished_run}", timeout=LONG)
    page.get_by_role("tab", name="Checkpoints").click()
    page.locator("#run-checkpoints [data-testid='cell-0-0']").click()
    expect(page.locator("#ckpt-info")).to_contain_text("selected")
    page.locator("#ckpt-evaluate").click()  # to the Evaluate page with that checkpoint chosen

    expect(page.locator("#eval-models")).to_contain_text(f"run-{finished_run}/step-", timeout=LONG)
    choose(page, "eval-datasets", f"#{dataset_id} ")
    page.locator("#eval-limit input, #eval-limit textarea").first.fill("3")
    page.locator("#eval-max-tokens input").fill("16")
    page.locator("#eval-launch").click()
    expect(page.locator("#eval-job")).to_contain_text("succeeded", timeout=LONG)
    scores = page.locator("#eval-scores")
    expect(scores).to_contain_text(f"run-{finished_run}/step-", timeout=LONG)
    expect(scores).to_contain_text("judged")
    expect(page.locator("#eval-bars .js-plotly-plot")).to_be_visible()

    choose(page, "eval-cell", f"run-{finished_run}")
    page.locator("#eval-samples [data-testid='cell-0-0']").click()
    sample = page.locator("#eval-sample")
    expect(sample).to_contain_text("judge’s reference answer", timeout=LONG)
    expect(sample).to_contain_text("Assistant 1 scored")  # the dev judge's verdict text
    shot(page, shots, "06-evaluation")
    page.context.close()


# Blind checks read every response body the page received. Streamed ones (Gradio's event stream) are
# still open when the check runs, so a tap in the page copies each fetch() body as its chunks arrive;
# finished responses (documents, assets, plain requests) come from Playwright's own records.
RESPONSE_TAP = """
window.__gadBodies = [];
const gadFetch = window.fetch.bind(window);
window.fetch = async (...args) => {
  const response = await gadFetch(...args);
  try {
    const copy = response.clone();
    if (copy.body) {
      const entry = {url: response.url || String(args[0]), text: ""};
      window.__gadBodies.push(entry);
      const reader = copy.body.getReader(), decoder = new TextDecoder();
      (async () => { for (;;) { const {done, value} = await reader.read(); if (done) break;
                                entry.text += decoder.decode(value, {stream: true}); } })().catch(() => {});
    }
  } catch (e) {}
  return response;
};
"""


def tapped(page) -> list[int]:
    """A mark: how much of each tapped fetch body has arrived so far (for `received(..., since=...)`)."""
    return page.evaluate("(window.__gadBodies || []).map(e => e.text.length)")


def received(page, finished: list, since: list[int] = ()) -> dict[str, str]:
    """url -> body of what `page` received: the `finished` requests' bodies and the tapped fetches (only
    what arrived after the mark `since`, when given)."""
    bodies = {}
    for request in finished:
        response = request.response()
        if response is not None and not 300 <= response.status < 400:
            bodies[request.url] = response.body().decode("utf-8", errors="replace")
    for i, entry in enumerate(page.evaluate("window.__gadBodies || []")):
        bodies[f"{entry['url']} (fetch #{i})"] = entry["text"][since[i] if i < len(since) else 0:]
    return bodies


def test_study_with_leak_review_and_blind_annotation(studio, browser, shots, finished_run, dataset_id, tmp_path):
    from app.services.datasets import dataset_examples

    with studio.ctx.sessions() as s:
        examples = dataset_examples(s, dataset_id, "test")  # a study asks the test prompts
    assert len(examples) >= 2
    # Model B's answers come from a file; one of them gives its model away.
    answers = tmp_path / "model-b-answers.jsonl"
    answers.write_text("".join(json.dumps({"id": ex.id, "messages": ex.messages, "response":
                                           "As an AI developed by OpenAI, I think so." if i == 0 else
                                           f"A plain answer number {i}."}) + "\n" for i, ex in enumerate(examples)))

    page = login(browser, studio, ADMIN)
    open_tab(page, "tab-studies")
    page.locator("#study-name input, #study-name textarea").first.fill("checkpoint vs file")
    choose(page, "study-model-a", f"run-{finished_run}/step-")
    model_a = page.locator("#study-model-a input").input_value()
    assert model_a.startswith(f"run-{finished_run}/step-"), model_a
    model_b = page.locator("#study-model-b input")
    model_b.fill(str(answers))
    model_b.press("Enter")
    choose(page, "study-dataset", f"#{dataset_id} ")
    page.locator("#study-items input").fill(str(len(examples)))
    page.locator("#study-create").click()
    header = page.locator("#study-header")
    expect(header).to_contain_text("review", timeout=LONG)  # built; a response leaks its model
    flagged = page.locator("#study-flagged")
    expect(flagged).to_contain_text("give their model away")
    expect(flagged.locator(".leak").filter(has_text="OpenAI").first).to_be_visible()  # highlighted
    shot(page, shots, "07-study-review")
    page.locator("#study-drop").click()
    expect(header).to_contain_text("open", timeout=LONG)

    from app.db.models import Run

    with studio.ctx.sessions() as s:
        run = s.get(Run, finished_run)
        # What would unblind the annotator: model ids, run names and folders, the answers file, the study name.
        real = {x for x in (model_a, f"run-{finished_run}/", run.name, run.uid, run.output_dir, str(answers),
                            answers.name, "checkpoint vs file") if x}
    logged_in = login(browser, studio, ANNOTATOR, "/annotate/")
    annotator = logged_in.context.new_page()  # a fresh tab of that session, recorded from its first request
    logged_in.close()
    responses = []
    annotator.on("requestfinished", lambda request: responses.append(request))
    annotator.add_init_script(RESPONSE_TAP)
    annotator.goto("/annotate/")
    expect(annotator.locator("#ann-prompt")).not_to_be_empty(timeout=LONG)
    expect(annotator.locator("#ann-progress")).to_contain_text("0 rated")
    first_prompt = annotator.locator("#ann-prompt").inner_text()
    shown = annotator.locator("body").inner_text() + annotator.content()
    bodies = received(annotator, responses)
    leaks = sorted(f"{x!r} in {where}" for x in real
                   for where, text in [("the page", shown), *bodies.items()] if x in text)
    assert leaks == [], leaks                                                    # blind, before any vote
    # Not vacuous: the item itself reached the page through the responses that were checked.
    fragment = re.match(r"[A-Za-z ,]{8,}", first_prompt.strip()).group(0)[:30]
    assert any(fragment in text for text in bodies.values()), (fragment, list(bodies))
    assert annotator.locator("#tab-runs-button").count() == 0                   # and no studio
    annotator.keyboard.press("1")                                                 # left is better
    expect(annotator.locator("#ann-progress")).to_contain_text("1 rated", timeout=LONG)
    annotator.keyboard.press("u")                                                 # undo
    expect(annotator.locator("#ann-status")).to_contain_text("taken back", timeout=LONG)
    expect(annotator.locator("#ann-prompt")).to_have_text(first_prompt)
    shot(annotator, shots, "08-annotator", full_page=False)
    items = int(re.search(r"of (\d+)", annotator.locator("#ann-progress").inner_text()).group(1))
    for k, key in zip(range(1, items + 1), "3421" * items):  # right better, both bad, tie, left better, ...
        annotator.keyboard.press(key)
        expect(annotator.locator("#ann-progress")).to_contain_text(f"{k} rated", timeout=LONG)
    expect(annotator.locator("#ann-prompt")).to_contain_text("All done", timeout=LONG)
    annotator.goto("/ui/")
    expect(annotator).to_have_url(re.compile(r"/annotate/$"))  # the studio is not for annotators
    annotator.context.close()

    page.get_by_role("button", name="↻ Refresh results").click()
    results = page.locator("#study-results")
    expect(results).to_contain_text(ANNOTATOR, timeout=LONG)
    expect(page.locator("#study-chart .js-plotly-plot")).to_be_visible()
    shot(page, shots, "09-study-results")
    page.context.close()


def test_chat_with_a_checkpoint_streams_an_answer(studio, browser, shots, finished_run):
    page = login(browser, studio, ADMIN)
    page.add_init_script(RESPONSE_TAP)  # for the blind part below: the page's streamed responses are read too
    page.reload()
    wait_for_app(page)
    open_tab(page, "tab-chat")
    choose(page, "chat-model-1", f"run-{finished_run}/step-")
    page.locator("#chat-max-tokens input[type=number]").fill("48")
    page.locator("#chat-max-tokens input[type=number]").press("Enter")
    page.locator("#chat-input textarea").fill("Describe a process of making crepes.")
    page.locator("#chat-input textarea").press("Enter")
    bot = page.locator("#chat-bot-1")
    expect(bot).to_contain_text("Describe a process of making crepes.", timeout=LONG)
    answer = bot.locator(".message.bot, [data-testid='bot']").last
    expect(answer).to_be_visible(timeout=LONG)
    expect(answer).not_to_have_text(re.compile(r"^\s*(…)?\s*$"), timeout=LONG)  # text arrived, not just "…"
    assert "⚠" not in answer.inner_text()
    shot(page, shots, "10-chat", full_page=False)

    # Two models side by side, blind: names hidden until the vote, which lands in a study.
    page.locator("#chat-blind input").check()
    choose(page, "chat-model-2", "base/tiny")
    real = [page.locator(f"#chat-model-{i} input").input_value() for i in (1, 2)]
    assert real[0].startswith(f"run-{finished_run}/step-") and real[1].startswith("base/tiny"), real
    responses = []  # from here to the vote: the blind conversation (the pickers above name models openly)

    def record(request):
        responses.append(request)

    page.on("requestfinished", record)
    mark = tapped(page)
    page.locator("#chat-input textarea").fill("Name three colours.")
    page.locator("#chat-input textarea").press("Enter")
    expect(page.locator("#chat-vote-left")).to_be_visible(timeout=LONG)
    columns = [page.locator(f"#chat-bot-{i}").inner_text() for i in (1, 2)]
    assert "Model A" in columns[0] and "Model B" in columns[1], columns         # both anonymous labels
    bodies = received(page, responses, since=mark)
    assert any("Model A" in text for text in bodies.values()), list(bodies)    # the answers were recorded
    leaks = sorted(f"{m!r} in {where}" for m in real + [f"run-{finished_run}/", "tiny-demo"]
                   for where, text in [("the columns", "\n".join(columns)), *bodies.items()] if m in text)
    assert leaks == [], leaks                                                   # blind until the vote
    page.remove_listener("requestfinished", record)
    page.locator("#chat-vote-left").click()
    verdict = page.locator("#chat-vote-result")
    expect(verdict).to_contain_text("Vote recorded in the study “Chat arena:", timeout=LONG)
    expect(verdict).to_contain_text(f"run-{finished_run}/step-")  # unblinded after the vote
    page.context.close()


def test_fork_with_edited_settings_and_compare(studio, browser, shots, finished_run):
    page = login(browser, studio, ADMIN)
    open_tab(page, "tab-runs")
    open_tab(page, "tab-run")
    choose(page, "run-pick", f"#{finished_run} ")
    expect(page.locator("#run-header")).to_contain_text(f"#{finished_run}", timeout=LONG)
    page.locator("#run-fork").click()  # the New run form, filled with the run's settings
    expect(page.locator("#run-launch")).to_have_text("Launch fork", timeout=LONG)
    lr = page.locator("#cfg-lr input")
    lr.fill("0.0002")
    lr.press("Tab")
    # It starts at the parent's last step: plan far more, so it is surely still training when cancelled
    # (a short fork can finish before the click lands on a fast moment of a loaded machine).
    page.locator("#cfg-steps input, #cfg-steps textarea").first.fill("400")
    page.locator("#run-launch").click()
    header = page.locator("#run-header")
    expect(header).to_contain_text(f"forked from run #{finished_run}", timeout=LONG)
    fork_id = int(re.search(r"#(\d+) ", header.inner_text()).group(1))
    page.locator("#run-cancel").click()  # no need to train it: cancel, which the page shows
    expect(header).to_contain_text(re.compile("cancel"), timeout=LONG)

    open_tab(page, "tab-compare")
    choose(page, "compare-runs", f"#{finished_run} ")
    choose(page, "compare-runs", f"#{fork_id} ")
    diff = page.locator("#compare-diff")
    expect(diff).to_contain_text("lr", timeout=LONG)
    expect(diff).to_contain_text("0.0002")
    expect(page.locator("#compare-chart .js-plotly-plot")).to_be_visible()
    shot(page, shots, "12-compare")
    page.context.close()


def test_admin_adds_an_endpoint_with_a_write_only_key_and_a_user(studio, browser, shots):
    page = login(browser, studio, ADMIN)
    open_tab(page, "tab-admin")
    page.locator("#endpoint-add").get_by_text("Add an endpoint").click()
    page.locator("#endpoint-name input, #endpoint-name textarea").first.fill("second-judge")
    page.locator("#endpoint-url input, #endpoint-url textarea").first.fill(studio.devserver.base_url)
    page.locator("#endpoint-model input, #endpoint-model textarea").first.fill("judge-dev")
    page.locator("#endpoint-key input").fill("sk-very-secret-value")
    page.locator("#endpoint-create").click()
    expect(page.locator("#endpoint-test-result")).to_contain_text("added", timeout=LONG)
    table = page.locator("#endpoints-table")
    expect(table).to_contain_text("second-judge")
    expect(table).to_contain_text("stored (encrypted)")
    page.locator("#endpoint-test").click()
    expect(page.locator("#endpoint-test-result")).to_contain_text("Connected", timeout=LONG)
    assert "sk-very-secret-value" not in page.content()  # write-only: never sent back to the browser

    page.locator("#user-name input, #user-name textarea").first.fill("bob")
    choose(page, "user-role", "researcher")
    page.locator("#user-password input").fill("another-long-pass")
    page.locator("#user-create").click()
    expect(page.locator("#users-table")).to_contain_text("bob", timeout=LONG)
    shot(page, shots, "11-endpoints-users")
    page.context.close()
