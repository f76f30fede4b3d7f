"""The bugs a new researcher met on a first afternoon with the dashboard (issue 19), one test each:
A. an uploaded dataset opens; B. the rollout viewer follows a step typed or moved by keyboard;
C. refusals stay visible in the server's words and the pre-launch check agrees with the launch;
D. compare shows every run in its legend, fork parentage, and settings the method ignores as such;
E. the New run form preselects a dataset that can train.

Each runs alone: what it needs comes from the fixtures in conftest.py or is made here through the
services."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.conftest import wait_for
from tests.ui.conftest import ADMIN, LONG, choose, login, open_tab, shot

pytestmark = pytest.mark.slow
SHORT = 60_000  # a reaction to a click; long enough for a loaded machine


def _import(studio, path, name: str) -> int:
    from app.db.session import session_scope
    from app.services.datasets import import_dataset

    with session_scope(studio.ctx.sessions) as s:
        return import_dataset(s, path, name=name).id


def _prompts_only(tmp_path, name: str, n: int = 4):
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Name {i + 2} colours."}) + "\n" for i in range(n)))
    return path


def test_a_an_uploaded_dataset_opens(studio, browser, shots, dataset_id, tmp_path):
    page = login(browser, studio, ADMIN)
    choose(page, "dataset-pick", f"#{dataset_id} ")
    summary = page.locator("#dataset-summary")
    expect(summary).to_contain_text(f"#{dataset_id} ", timeout=LONG)  # another set is open ...
    page.locator("#dataset-upload input[type=file]").set_input_files(str(_prompts_only(tmp_path, "fresh-upload")))
    expect(page.locator("#upload-result")).to_contain_text("Imported", timeout=LONG)
    new_id = int(re.search(r"dataset #(\d+)", page.locator("#upload-result").inner_text()).group(1))
    # ... and the new one opens: its summary and its preview, not the previous set's
    expect(summary).to_contain_text(f"#{new_id} fresh-upload", timeout=SHORT)
    expect(page.locator("#dataset-pick input")).to_have_value(re.compile("fresh-upload"))
    expect(page.locator("#dataset-preview")).to_contain_text("Name 2 colours.", timeout=SHORT)
    shot(page, shots, "dataset", full_page=False)
    page.context.close()


def test_b_the_rollout_step_follows_the_keyboard(studio, browser, shots, finished_run):
    from app.services.run_views import sample_steps

    with studio.ctx.sessions() as s:
        steps = sample_steps(s, finished_run)
    assert len(steps) >= 3, steps
    page = login(browser, studio, ADMIN)
    open_tab(page, "tab-runs")
    open_tab(page, "tab-run")
    choose(page, "run-pick", f"#{finished_run} ")
    page.get_by_role("tab", name="Rollouts").click()
    rollouts = page.locator("#rollouts")
    expect(rollouts).to_contain_text(f"step {steps[-1]} ·", timeout=LONG)  # the newest step, at first

    box = page.locator("#rollout-step input[type=number]")
    box.fill(str(steps[0]))  # typed: no mouse release
    expect(rollouts).to_contain_text(f"step {steps[0]} ·", timeout=SHORT)
    expect(box).to_have_value(str(steps[0]))  # the box keeps what was typed

    slider = page.locator("#rollout-step input[type=range]")
    slider.focus()
    slider.press("ArrowRight")  # the arrow keys move one step
    expect(rollouts).to_contain_text(f"step {steps[1]} ·", timeout=SHORT)
    expect(page.locator("#rollout-follow input")).not_to_be_checked()  # no longer on the newest step
    shot(page, shots, "rollouts")
    page.context.close()


def test_c_refusals_stay_visible_and_the_check_agrees_with_the_launch(studio, browser, shots, finished_run,
                                                                      tmp_path):
    empty = _import(studio, _prompts_only(tmp_path, "no-teacher-yet"), "no-teacher-yet")
    page = login(browser, studio, ADMIN)
    open_tab(page, "tab-new-run")
    choose(page, "run-dataset", f"#{empty} ")
    choose(page, "run-student", "tiny")
    choose(page, "run-preset", "quick CPU smoke test")
    checks = page.locator("#run-checks")
    # The check runs the launch's validation: no "consistent" for a set the launch refuses.
    expect(checks).to_contain_text("no prompts with teacher responses", timeout=SHORT)
    expect(checks).not_to_contain_text("consistent")
    page.locator("#run-launch").click()
    result = page.locator("#run-result")
    expect(result).to_contain_text(f"dataset {empty} has no prompts with teacher responses", timeout=SHORT)
    expect(result).to_contain_text("Not launched")
    # Stays: it is not a toast; and the form's panels show their content, not an error pill.
    page.wait_for_function("() => !document.querySelector('.toast-body')", timeout=SHORT)
    expect(result).to_contain_text("no prompts with teacher responses")
    expect(checks).to_contain_text("no prompts with teacher responses")

    # A fork of a finished run: the form starts with steps that continue training, and says how many.
    open_tab(page, "tab-runs")
    open_tab(page, "tab-run")
    choose(page, "run-pick", f"#{finished_run} ")
    expect(page.locator("#run-header")).to_contain_text(f"#{finished_run}", timeout=LONG)
    page.locator("#run-fork").click()
    expect(page.locator("#run-launch")).to_have_text("Launch fork", timeout=LONG)
    expect(checks).to_contain_text("more step", timeout=SHORT)
    expect(checks).to_contain_text("consistent")
    with studio.ctx.sessions() as s:
        from app.services.runs import get_run

        parent = get_run(s, finished_run)
        parent_data, last = parent.config["data"], parent.step
    # (the command box draws only the lines in view: its first lines are checked, the plan in the estimate)
    expect(page.locator("#run-command")).to_contain_text(parent_data.rsplit("/", 1)[-1])  # the parent's data
    steps = page.locator("#cfg-steps input, #cfg-steps textarea").first
    estimate = page.locator("#run-estimate")
    expect(estimate).to_contain_text(f"+ {steps.input_value()} adversarial")  # the previews show the fork's steps
    shot(page, shots, "fork-form", full_page=False)

    steps.fill("1")  # a fork that would train nothing: the check says so, and so does the launch
    steps.press("Tab")
    expect(estimate).to_contain_text("+ 1 adversarial", timeout=SHORT)  # the preview follows the edit
    expect(checks).to_contain_text("train nothing", timeout=SHORT)
    expect(checks).not_to_contain_text("consistent")
    page.locator("#run-launch").click()
    expect(result).to_contain_text("Not launched", timeout=SHORT)
    expect(result).to_contain_text(f"starts after step {last}")
    page.context.close()


def test_d_compare_three_runs_with_a_fork_and_a_baseline(studio, browser, shots, finished_run, dataset_id):
    from app.db.session import session_scope
    from app.services.presets import BUILTIN, CPU_SMOKE
    from app.services.runs import cancel_run, fork_run, submit_from_dataset

    with session_scope(studio.ctx.sessions) as s:
        fork = fork_run(s, studio.ctx.settings, finished_run, overrides={"steps": 40, "lr": 2e-4},
                        name="compare fork", user_id=None).id
        baseline = submit_from_dataset(s, studio.ctx.settings, {**BUILTIN[CPU_SMOKE], "method": "seqkd", "lr": 5e-4,
                                                                "student": str(studio.tiny_model)},
                                       dataset_id, name="compare seqkd").id
        cancel_run(s, fork)  # the fork keeps its copied history; it need not train
    studio.ctx.enqueue("train", baseline)
    wait_for(lambda: studio.run_status(baseline) in ("succeeded", "failed"), LONG / 1000, "the SeqKD run")
    assert studio.run_status(baseline) == "succeeded"

    page = login(browser, studio, ADMIN)
    open_tab(page, "tab-runs")
    open_tab(page, "tab-compare")
    for run_id in (finished_run, fork, baseline):
        choose(page, "compare-runs", f"#{run_id} ")
    chart = page.locator("#compare-chart")
    legend = chart.locator(".legend .traces")
    expect(legend).to_have_count(3, timeout=LONG)  # every run, though SeqKD has no discriminator panels
    for run_id in (finished_run, fork, baseline):
        expect(chart.locator(".legend")).to_contain_text(f"#{run_id} ")
    page.keyboard.press("Escape")  # close the picker's list
    diff = page.locator("#compare-diff")
    expect(diff).to_contain_text(f"run #{finished_run} at step", timeout=SHORT)  # fork parentage
    expect(diff).to_contain_text("(ignored by seqkd)")  # lr differs, but SeqKD trains with seqkd_lr
    shot(page, shots, "compare")
    page.context.close()


def test_e_the_form_preselects_a_dataset_that_can_train(studio, browser, dataset_id, tmp_path):
    newest = _import(studio, _prompts_only(tmp_path, "newest-but-empty"), "newest-but-empty")
    page = login(browser, studio, ADMIN)
    open_tab(page, "tab-new-run")
    picked = page.locator("#run-dataset input")
    expect(picked).to_have_value(re.compile(r"with teacher responses"), timeout=LONG)
    assert f"#{newest} " not in picked.input_value()
    assert not re.search(r"\(0/\d+ with", picked.input_value()), picked.input_value()
    page.context.close()
