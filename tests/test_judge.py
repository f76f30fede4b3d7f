"""Judge parsing and aggregation, diagnostics, and a tiny-model end-to-end evaluation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from app.devserver import DevServer, count_tokens
from gad.llm.judge import aggregate_score, bootstrap_interval, judge_messages, parse_scores, summarise
from gad.llm.metrics import length_stats, ngram_f1, overlap_report, rouge_l, select_checkpoint
from tests.conftest import REPO, read_jsonl


@pytest.fixture(autouse=True)
def data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("GAD_DATA_DIR", str(tmp_path / "data"))  # the shared judge cache lives in the test's folder


@pytest.mark.parametrize("text, expected", [
    ("8 7\nAssistant 1 was more detailed.", (8, 7)),
    ("8/10 7/10\nexplanation", (8, 7)),
    ("8, 7", (8, 7)),
    ("Scores: 8 and 7", (8, 7)),
    ("**8** **7**\n\nBoth are fine.", (8, 7)),
    ("\n\n  9 10  \nwhy", (9, 10)),
    ("7.5 8.5\n", (7.5, 8.5)),
    ("Assistant 1: 6\nAssistant 2: 9\nAssistant 1 lists 3 items.", (6, 9)),
    ("Assistant 1 receives a score of 4, and Assistant 2 receives a score of 8.", (4, 8)),
    ("Assistant 1: 7/10, Assistant 2: 5/10", (7, 5)),
    ("10 10", (10, 10)),
])
def test_parser_handles_real_answer_shapes(text, expected):
    assert parse_scores(text) == expected


@pytest.mark.parametrize("text", ["", None, "I cannot judge this.", "Both answers are good.", "11 12\nnope",
                                  "Assistant 1 is better."])
def test_parser_returns_none_when_it_cannot_tell(text):
    assert parse_scores(text) is None


def test_aggregate_formula_on_known_scores():
    # model 8+6+7 = 21, reference 7+8+7 = 22 -> 100*21/43
    assert aggregate_score([8, 6, 7], [7, 8, 7]) == pytest.approx(100 * 21 / 43)
    assert aggregate_score([5, 5], [5, 5]) == 50.0


def test_bootstrap_interval_brackets_the_score_and_shrinks_with_more_data():
    m = [8, 6, 7, 9, 5, 7, 8, 6] * 2
    r = [7, 8, 7, 7, 8, 6, 7, 7] * 2
    lo, hi = bootstrap_interval(m, r, seed=1)
    assert lo <= aggregate_score(m, r) <= hi and hi - lo > 0
    lo4, hi4 = bootstrap_interval(m * 4, r * 4, seed=1)
    assert hi4 - lo4 < hi - lo


def test_summary_counts_flips_and_unparsed():
    s = summarise([(8, 7), (5, 5)], unparsed=1, flips=[True, False, False, False])
    assert s.judged == 2 and s.unparsed == 1 and s.flip_rate == 0.25 and s.mean_model == 6.5


def test_judge_prompt_has_both_answers_in_order():
    msgs = judge_messages("Q?", "first answer", "second answer")
    text = msgs[-1]["content"]
    assert text.index("first answer") < text.index("second answer")
    assert "[The Start of Assistant 1's Answer]" in text and "single line containing only two values" in text


def test_ngram_f1_and_rouge_by_hand():
    assert ngram_f1("the cat sat", "the cat sat", 1) == 1.0
    # unigrams: pred {a, b, c}, ref {a, b, d, e}: overlap 2 -> P 2/3, R 1/2 -> F1 4/7
    assert ngram_f1("a b c", "a b d e", 1) == pytest.approx(4 / 7)
    assert ngram_f1("a b c", "c b a", 2) == 0.0
    # LCS("a b c d", "a c d e") = 3 -> P 3/4, R 3/4
    assert rouge_l("a b c d", "a c d e") == pytest.approx(0.75)
    rep = overlap_report(["a b c"], ["a b c"])
    assert rep["rouge_l"] == 1.0 and rep["ngram_f1_4"] == 0.0
    assert length_stats(["a b", "a b c d"])["mean"] == 3.0


def test_checkpoint_selection_respects_the_length_ratio():
    rows = [{"model": "step-50", "score": 48.0, "length": 100}, {"model": "step-100", "score": 52.0, "length": 400},
            {"model": "step-150", "score": 50.0, "length": 130}]
    assert select_checkpoint(rows, teacher_length=110, max_length_ratio=1.5)["model"] == "step-150"
    assert select_checkpoint(rows, teacher_length=110, max_length_ratio=5)["model"] == "step-100"
    assert select_checkpoint(rows, teacher_length=1000, max_length_ratio=1.1) is None


def test_tiny_model_end_to_end_evaluation(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("GAD_JUDGE_KEY", "sk-judge")
    teacher = tmp_path / "teacher.jsonl"
    vicuna = [json.loads(line) for line in (REPO / "gad/data/datasets/vicuna_80.jsonl").read_text().splitlines()[:4]]
    teacher.write_text("".join(json.dumps({"id": r["id"], "prompt": r["prompt"],
                                           "response": "A long and thorough teacher answer " * 6}) + "\n"
                               for r in vicuna))
    faults = [{"match": "*", "fault": "500", "times": 2}]
    with DevServer(faults=faults) as srv:
        cmd = [sys.executable, "-m", "gad.cli", "evaluate", "--model", f"tiny={tiny_model}", "--model",
               f"teacher={teacher}", "--sets", "vicuna", "--limit", "4", "--max-new-tokens", "8",
               "--judge-base-url", srv.base_url, "--judge-model", "judge", "--judge-api-key-env", "GAD_JUDGE_KEY",
               "--output", str(tmp_path / "eval"), "--both-orders", "--teacher", "teacher",
               "--judge-max-retries", "3", "--judge-timeout", "5"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
        assert proc.returncode == 0, proc.stderr[-2000:]
        n_requests = len(srv.requests())
        # a second run is served from the judge cache
        subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO, check=True)
        assert len(srv.requests()) == n_requests
    table = json.loads((tmp_path / "eval" / "table.json").read_text())
    rows = {r["model"]: r for r in table["rows"]}
    samples = read_jsonl(tmp_path / "eval" / "samples.jsonl")
    assert len(samples) == 8 and all(len(s["orders"]) == 2 for s in samples)
    # the dev judge scores by length: recompute the headline score from the recorded verdicts
    for name, row in rows.items():
        mine = [s for s in samples if s["model"] == name]
        expected = (100 * sum(s["model_score"] for s in mine)
                    / sum(s["model_score"] + s["reference_score"] for s in mine))
        assert row["score"] == pytest.approx(expected) and row["unparsed"] == 0 and row["flip_rate"] == 0.0
    assert rows["teacher"]["score"] > rows["tiny"]["score"]      # longer answers win with this judge
    assert "rouge_l" in rows["tiny"] and "inferred" in (tmp_path / "eval" / "table.md").read_text()
    assert (tmp_path / "eval" / "table.png").read_bytes()[:4] == b"\x89PNG"
    assert all(0 <= r["win_rate"] <= 1 and 0 <= r["lc_win_rate"] <= 1 for r in rows.values())
    assert "length-controlled win rate" in (tmp_path / "eval" / "table.md").read_text()
    assert "tiny" in proc.stdout and "vicuna score" in proc.stdout
    # the dev judge's score is a known function of the answer lengths
    s = samples[0]
    assert s["orders"]["model_first"]["model_score"] == max(1, min(10, 1 + count_tokens(s["response"]) // 10))


def test_prompts_without_a_reference_are_recorded_not_judged(tmp_path, monkeypatch):
    from gad.llm.api_client import Endpoint
    from gad.llm.evaluate import ModelSpec, evaluate

    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"prompt": p, "response": "an answer of some length " * 3}) + "\n"
                               for p in ("first question", "second question", "third question")))
    prompts = tmp_path / "set.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ("first question", "second question",
                                                                          "third question")))
    # the judge refuses to write a reference for the second prompt (content filter: final)
    with DevServer(faults=[{"match": "second question", "fault": "content_filter"}]) as srv:
        judge = Endpoint(base_url=srv.base_url, model="j", api_key_env=None)
        table = evaluate([ModelSpec.parse(f"m={answers}")], [str(prompts)], judge, tmp_path / "out",
                         say=lambda t: None)
        judged = [r for r in srv.requests() if "Assistant 1" in r["prompt"]]
    assert len(judged) == 2                                   # no verdict paid for against nothing
    row = table["rows"][0]
    assert row["judged"] == 2 and row["failed"] == 1 and row["unparsed"] == 0   # table and samples agree
    failed = [s for s in read_jsonl(tmp_path / "out" / "samples.jsonl")
              if s["orders"]["model_first"]["status"] == "failed"]
    assert len(failed) == 1 and "no judge reference" in failed[0]["orders"]["model_first"]["error"]


def test_length_controlled_win_rate_discounts_answers_that_win_by_length():
    import math
    import random

    from gad.llm.judge import length_controlled_win_rates, win_rate

    rng = random.Random(0)
    reference = [100.0] * 300

    def model(mean_words, sd, skill):  # the judge: P(win) = sigmoid(skill + 2 * (length - 100) / 50)
        words = [mean_words + rng.gauss(0, sd) for _ in reference]
        pairs = [(8, 6) if rng.random() < 1 / (1 + math.exp(-(skill + 2 * (w - 100) / 50))) else (6, 8) for w in words]
        return pairs, words, reference

    fits = {"varied": model(100, 50, 0.0), "long": model(160, 15, 0.0), "better": model(100, 50, 1.0)}
    lc = length_controlled_win_rates(fits)
    raw = {name: win_rate(f[0]) for name, f in fits.items()}
    assert raw["long"] > 0.9 and lc["long"] < raw["long"] - 0.2        # it won by length, not by skill
    assert abs(lc["varied"] - raw["varied"]) < 0.05                     # as long as the reference on average
    assert lc["better"] > lc["varied"] + 0.1                            # real skill survives the control
    assert math.isnan(length_controlled_win_rates({"none": ([], [], [])})["none"])


def test_the_judge_is_flagged_when_it_shares_the_teachers_family():
    from gad.llm.judge import model_family, self_preference_warning

    assert model_family("openai/gpt-4o-mini") == model_family("gpt-4.1") == "gpt"
    assert model_family("Qwen/Qwen2.5-7B-Instruct") == "qwen" and model_family("my-student") is None
    warning = self_preference_warning("gpt-4o", "teacher=gpt-4.1-mini")
    assert warning and "gpt" in warning and "another family" in warning
    assert self_preference_warning("claude-3-5-sonnet", "gpt-4o") is None
    assert self_preference_warning("gpt-4o", None) is None
