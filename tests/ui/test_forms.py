"""The run form and its previews without a browser: every RunConfig setting has exactly one input,
the method menu maps to settings and back, presets validate, the command preview round-trips."""

from __future__ import annotations

import shlex

import pytest

from app.errors import InvalidInput
from app.services.presets import BUILTIN, CPU_SMOKE, _validate
from app.services.run_form import METHODS, command_preview, config_checks, method_label
from app.ui.widgets.config_form import NOT_IN_FORM, grouped_fields
from gad.training.config import RunConfig


def test_the_form_shows_every_setting_once_and_only_runconfig_settings():
    shown = [f for _, fields in grouped_fields() for f in fields]
    assert sorted(shown) == sorted(set(RunConfig.model_fields) - set(NOT_IN_FORM))
    assert len(shown) == len(set(shown))
    assert grouped_fields()[0][0] == "Essentials"


@pytest.mark.parametrize("label", list(METHODS))
def test_each_method_of_the_menu_is_valid_and_reads_back(label):
    values = {**BUILTIN[CPU_SMOKE], **METHODS[label]}
    assert config_checks(values)["errors"] == []
    assert method_label(values) == label


def test_presets_reject_unknown_and_invalid_settings():
    with pytest.raises(InvalidInput, match="unknown setting"):
        _validate({"batch_sise": 2})
    with pytest.raises(InvalidInput, match="group_size"):
        _validate({"group_size": 1})
    assert "student" not in _validate({"student": "x", "lr": 1e-5})


def test_the_command_preview_is_a_command_with_only_changed_settings():
    command, yaml_text = command_preview({**BUILTIN[CPU_SMOKE], "method": "gad", "student": "org/model",
                                          "data": "p.jsonl"}, output="runs/x")
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:2] == ["gad-studio", "train"]
    assert "--batch-size" in words and "--kl-coef" not in words  # the paper's default is left out
    assert "batch_size: 2" in yaml_text and "output: runs/x" in yaml_text


# --- issue 19: what the dashboard's charts and messages say ------------------------------------
def test_a_tie_is_no_best_model():
    from app.ui.pages.evaluate import EvaluatePage

    rows = [{"model": m, "set": "vicuna", "score": 40.0, "length": 50.0, "ci_low": 30, "ci_high": 50} for m in "ab"]
    html, _ = EvaluatePage._best(rows, 0, 100, None)
    assert "Tie" in html and "Best" not in html
    rows[1]["score"] = 38.0
    html, _ = EvaluatePage._best(rows, 0, 100, None)
    assert "Best" in html and "<b>a</b>" in html


def test_a_model_has_one_colour_in_every_evaluation_chart():
    import json

    from app.ui.widgets import charts

    rows = [{"model": m, "set": s, "score": sc, "length": ln, "ci_low": None, "ci_high": None}
            for m, sc, ln in (("teacher", 50.0, 80.0), ("gad", 45.0, 70.0), ("seqkd", 41.0, 60.0)) for s in ("a", "b")]
    bars = {t["name"]: t["marker"]["color"] for t in json.loads(charts.score_bars(rows).plot)["data"]}
    scatter = json.loads(charts.score_vs_length(rows, 0, 100, "gad").plot)["data"][0]
    assert dict(zip(scatter["text"], scatter["marker"]["color"])) == bars
    assert len(set(bars.values())) == 3


def test_the_score_chart_shows_raw_and_length_controlled_win_rates_below_the_scores():
    import json

    from app.ui.widgets import charts

    rows = [{"model": m, "set": "a", "score": 50.0, "ci_low": None, "ci_high": None,
             "summary": {"win_rate": raw, "lc_win_rate": lc}} for m, raw, lc in (("gad", 0.7, 0.55),
                                                                                 ("seqkd", float("nan"), None))]
    fig = json.loads(charts.score_bars(rows).plot)
    below = {t["name"]: t["y"] for t in fig["data"] if t.get("yaxis") == "y2"}
    assert below == {"gad · win rate": [70.0], "gad · length-controlled": [55.0], "seqkd · win rate": [],
                     "seqkd · length-controlled": []}  # NaN and missing rates draw nothing, not 0%
    assert fig["layout"]["yaxis2"]["range"] == [0, 100] and fig["layout"]["yaxis"]["domain"][0] > 0.3
    plain = json.loads(charts.score_bars([{**r, "summary": {}} for r in rows]).plot)
    assert "yaxis2" not in plain["layout"] and all("yaxis" not in t for t in plain["data"])


def test_the_study_chart_draws_each_share_interval_where_the_share_is_read():
    import json

    from app.ui.widgets import charts

    r = {"votes": 20, "model_a": "a", "model_b": "b", "win_rate": 0.5, "tie_rate": 0.2, "loss_rate": 0.3,
         "win_ci": [0.3, 0.7], "tie_ci": [0.08, 0.42], "loss_ci": [0.15, 0.52]}
    traces = {t["name"]: t for t in json.loads(charts.study_bars([r]).plot)["data"]}
    win, tie, loss = (traces[f"95% interval: {k}"] for k in ("A wins", "tie", "B wins"))
    # A wins: at the green segment's right end; B wins: at the red segment's left end; tie: mid-grey
    assert win["x"] == [50.0] and win["error_x"]["array"][0] == pytest.approx(20) \
        and win["error_x"]["arrayminus"][0] == pytest.approx(20)
    assert tie["x"] == [60.0] and tie["error_x"]["array"][0] == pytest.approx(11)
    assert loss["x"] == [70.0] and loss["error_x"]["array"][0] == pytest.approx(15) \
        and loss["error_x"]["arrayminus"][0] == pytest.approx(22)


def test_step_ticks_are_whole_numbers_and_compare_lists_every_run():
    import json

    from app.ui.widgets import charts

    pts = [{"step": k, "value": 0.1 * k, "min": 0.1 * k, "max": 0.1 * k, "n": 1} for k in range(1, 7)]
    layout = json.loads(charts.run_curves({"loss": pts}, []).plot)["layout"]
    assert layout["xaxis"]["dtick"] == 1
    runs = [{"id": 1, "label": "#1 gad"}, {"id": 2, "label": "#2 seqkd"}]
    fig = json.loads(charts.compare_curves(runs, {1: {"disc_accuracy": pts, "loss": pts}, 2: {"loss": pts}},
                                           ["disc_accuracy", "loss"]).plot)
    legend = [t["name"] for t in fig["data"] if t.get("showlegend")]
    assert legend == ["#1 gad", "#2 seqkd"]  # the SeqKD run has no accuracy panel, yet it is listed


def test_the_run_page_says_when_a_run_is_too_short_for_its_alarms():
    from app.ui.pages.run_page import RunPage
    from gad.training.health import WINDOW

    view = {"id": 1, "name": "r", "status": "succeeded", "method": "gad", "stage": "adversarial", "attempts": 1,
            "total_steps": 6, "step": 6, "progress": 1.0, "last_metrics": {}, "alarms": [], "error": None,
            "cancel_requested": True}
    header = RunPage._header(view)
    assert f"last {WINDOW} steps" in header and "plans 6" in header
    assert "cancel requested" not in header  # the run has stopped: the request is history
    assert "plans" not in RunPage._header({**view, "total_steps": WINDOW + 5})


def test_the_rollout_prompt_shows_messages_not_template_tokens():
    from app.ui.pages.run_page import prompt_html

    html = prompt_html("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nName <three> colours."
                       "<|im_end|>\n<|im_start|>assistant\n")
    assert "im_start" not in html and "<b>user</b>" in html and "Name &lt;three&gt; colours." in html
    assert prompt_html("plain <text>") == "plain &lt;text&gt;"


def test_the_chat_shows_what_the_user_typed_and_sends_it_unchanged():
    from app.ui.pages.chat import as_shown, as_typed, said

    text = "<script>alert(1)</script> [x](javascript:alert(1)) **not bold** C:\\temp"
    assert as_typed(as_shown(text)) == text
    assert "<script>" not in as_shown(text)
    assert said({"role": "user", "content": as_shown(text)}) == text
    assert said({"role": "assistant", "content": "**bold**"}) == "**bold**"


def test_curves_send_evenly_spaced_steps_as_x0_and_dx_and_keep_spikes():
    import json

    from app.ui.widgets import charts

    bucketed = [{"step": 1 + 12 * i, "value": 0.5, "min": 0.4, "max": 0.9 if i == 7 else 0.6, "n": 12}
                for i in range(200)]
    fig = json.loads(charts.run_curves({"disc_loss": bucketed}, []).plot)
    traces = [t for t in fig["data"] if t.get("xaxis") == "x"]
    assert len(traces) == 4                                        # band max, band min, raw, EMA
    assert all(t["x0"] == 1 and t["dx"] == 12 and "x" not in t for t in traces)
    assert max(traces[0]["y"]) == 0.9                              # the one-bucket spike is still in the band
    uneven = [{"step": s, "value": 1.0, "min": 1.0, "max": 1.0, "n": 1} for s in (1, 2, 4, 8)]
    raw = [t for t in json.loads(charts.run_curves({"disc_loss": uneven}, []).plot)["data"] if t.get("xaxis") == "x"]
    assert raw[0]["x"] == [1, 2, 4, 8]
