"""Data formats people actually have, and the errors bad files get."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from gad.data.examples import PLAIN_WRAPPER, DataError, load_examples, load_responses, render_prompt, split_examples
from tests.conftest import REPO, TEST_DATA

SHARED = REPO.parent / "shared" / "datasets"


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --- each shape ------------------------------------------------------------------------------
SHAPES = {
    "pairs": ({"prompt": "Hi?", "response": "Hello."}, [("user", "Hi?")], "Hello."),
    "output_field": ({"prompt": "Hi?", "output": "Yo."}, [("user", "Hi?")], "Yo."),
    "completion_field": ({"prompt": "Hi?", "completion": "C."}, [("user", "Hi?")], "C."),
    "answer_field": ({"question": "Q?", "answer": "A."}, [("user", "Q?")], "A."),
    "reference_field": ({"prompt": "Q?", "reference": "R."}, [("user", "Q?")], "R."),
    "alpaca": ({"instruction": "Translate", "input": "chat", "output": "cat"},
               [("user", "Translate\n\nchat")], "cat"),
    "alpaca_no_input": ({"instruction": "Say hi", "input": "", "output": "hi"}, [("user", "Say hi")], "hi"),
    "openai_messages": ({"messages": [{"role": "system", "content": "Be brief."},
                                      {"role": "user", "content": "2+2?"},
                                      {"role": "assistant", "content": "4"}]},
                        [("system", "Be brief."), ("user", "2+2?")], "4"),
    "multi_turn_history": ({"messages": [{"role": "user", "content": "Hi"},
                                         {"role": "assistant", "content": "Hello!"},
                                         {"role": "user", "content": "Name a colour"},
                                         {"role": "assistant", "content": "Blue"}]},
                           [("user", "Hi"), ("assistant", "Hello!"), ("user", "Name a colour")], "Blue"),
    "sharegpt": ({"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]},
                 [("user", "Q")], "A"),
    "fastchat_turns": ({"question_id": 7, "turns": ["First?", "Second?"]}, [("user", "First?")], None),
    "arena_turns": ({"question_id": "x", "turns": [{"content": "Arena?"}]}, [("user", "Arena?")], None),
    "lmsys": ({"conversation": [{"role": "user", "content": "L?"}, {"role": "assistant", "content": "M"}]},
              [("user", "L?")], "M"),
    "paper_release": ({"content": [{"role": "user", "content": "P?"}], "teacher_response": "T."},
                      [("user", "P?")], "T."),
    "trl_conversational": ({"prompt": [{"role": "user", "content": "U?"}],
                            "completion": [{"role": "assistant", "content": "V."}]}, [("user", "U?")], "V."),
    "self_instruct": ({"id": "t0", "instruction": "Fix", "instances": [{"input": "teh", "output": "the"}]},
                      [("user", "Fix\n\nteh")], "the"),
    "text_field": ({"question_id": 1, "text": "Vicuna?"}, [("user", "Vicuna?")], None),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_each_shape_in_jsonl(tmp_path, name):
    row, messages, response = SHAPES[name]
    ex = load_examples(write_jsonl(tmp_path / "d.jsonl", [row]))[0]
    assert [(m["role"], m["content"]) for m in ex.messages] == messages
    assert ex.response == response


def test_teacher_field_priority(tmp_path):
    # teacher_response wins over a generic reference answer shipped with a prompt set
    ex = load_examples(write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p", "reference": "ref",
                                                           "teacher_response": "teacher"}]))[0]
    assert ex.response == "teacher"


def test_json_csv_parquet_give_the_same_examples(tmp_path):
    rows = [{"prompt": f"Question {i}?", "response": f"Answer {i}."} for i in range(5)]
    rows.append({"prompt": "multi", "response": "x"})
    jl = load_examples(write_jsonl(tmp_path / "d.jsonl", rows))
    (tmp_path / "d.json").write_text(json.dumps(rows))
    with (tmp_path / "d.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["prompt", "response"])
        w.writeheader()
        w.writerows(rows)
    import pandas as pd

    pd.DataFrame(rows).to_parquet(tmp_path / "d.parquet")
    for suffix in ("json", "csv", "parquet"):
        other = load_examples(tmp_path / f"d.{suffix}")
        assert [(e.messages, e.response) for e in other] == [(e.messages, e.response) for e in jl], suffix


def test_csv_cell_with_messages_json(tmp_path):
    path = tmp_path / "m.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["messages"])
        w.writerow([json.dumps([{"role": "user", "content": "hey"}, {"role": "assistant", "content": "ho"}])])
    ex = load_examples(path)[0]
    assert ex.messages == [{"role": "user", "content": "hey"}] and ex.response == "ho"


def test_join_teacher_responses_on_id(tmp_path):
    q = write_jsonl(tmp_path / "q.jsonl", [{"question_id": 1, "turns": ["a?"]}, {"question_id": 2, "turns": ["b?"]}])
    a = write_jsonl(tmp_path / "a.jsonl", [{"question_id": 2, "choices": [{"index": 0, "turns": ["B!"]}]},
                                           {"question_id": 1, "choices": [{"index": 0, "turns": [{"content": "A!"}]}]}])
    exs = load_examples(q, a, require_response=True)
    assert [(e.id, e.response) for e in exs] == [("1", "A!"), ("2", "B!")]


# --- errors name file, line and field ------------------------------------------------------------
def test_bad_json_line_is_located(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"prompt": "ok", "response": "fine"}\n{"prompt": "broken"\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not valid JSON"):
        load_examples(p)


@pytest.mark.parametrize("row, pattern", [
    ({"foo": "bar"}, r":1: no prompt field: expected one of prompt, question.*found foo"),
    ({"prompt": "   ", "response": "x"}, r":1: field 'prompt': the prompt is empty"),
    ({"prompt": 5, "response": "x"}, r":1: field 'prompt' should be text, got int"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, r"field 'messages\[0\]\.role' is 'wizard'"),
    ({"messages": [{"role": "user"}]}, r"field 'messages\[0\]' has no 'content'"),
    ({"messages": [{"role": "assistant", "content": "only"}]}, r"must end with a user turn"),
    ({"conversations": [{"value": "x"}]}, r"field 'conversations\[0\]' has no 'role'"),
    ({"turns": []}, r"field 'turns' should be a non-empty list"),
    ({"question_id": 3, "choices": [{"turns": ["x"]}]}, r"looks like an answers file"),
    (["not", "an", "object"], r":1: expected a JSON object per record, got list"),
])
def test_malformed_rows(tmp_path, row, pattern):
    p = write_jsonl(tmp_path / "x.jsonl", [row])
    with pytest.raises(DataError, match=pattern):
        load_examples(p)


def test_missing_teacher_response_names_line(tmp_path):
    p = write_jsonl(tmp_path / "x.jsonl", [{"prompt": "a", "response": "b"}, {"prompt": "c"}])
    with pytest.raises(DataError, match=r"x\.jsonl:2: no teacher response for prompt id 'x\.jsonl:2' \(1 of 2"):
        load_examples(p, require_response=True)


def test_csv_error_line_counts_header(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("prompt,response\nfine,ok\n,empty prompt\n")
    with pytest.raises(DataError, match=r"x\.csv:3: field 'prompt': the prompt is empty"):
        load_examples(p)


def test_unsupported_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_examples(tmp_path / "nope.jsonl")
    (tmp_path / "d.txt").write_text("hi")
    with pytest.raises(DataError, match=r"unsupported file type '\.txt'"):
        load_examples(tmp_path / "d.txt")
    (tmp_path / "e.jsonl").write_text("\n\n")
    with pytest.raises(DataError, match="holds no records"):
        load_examples(tmp_path / "e.jsonl")


# --- split and rendering ----------------------------------------------------------------------------
def test_split_is_deterministic_and_order_free(tmp_path):
    rows = [{"id": i, "prompt": f"p{i}", "response": "r"} for i in range(100)]
    exs = load_examples(write_jsonl(tmp_path / "d.jsonl", rows))
    train, test = split_examples(exs, 0.2, seed=3)
    assert len(test) == 20 and len(train) == 80
    train2, test2 = split_examples(list(reversed(exs)), 0.2, seed=3)
    assert {e.id for e in test} == {e.id for e in test2}
    _, test3 = split_examples(exs, 0.2, seed=4)
    assert {e.id for e in test} != {e.id for e in test3}


def test_render_chat_and_plain(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}, {"role": "user", "content": "Q"}]
    chat = render_prompt(msgs, tok, "chat")
    assert chat.endswith("<|im_start|>assistant\n") and "Yo<|im_end|>" in chat
    plain = render_prompt(msgs[-1:], tok, "plain")
    assert plain == PLAIN_WRAPPER.format(instruction="Q")


# --- the real files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted((REPO / "gad" / "data" / "datasets").glob("*.jsonl")), ids=lambda p: p.name)
def test_bundled_sets_load(path):
    exs = load_examples(path)
    assert len(exs) == sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    assert exs and all(e.prompt_text.strip() for e in exs)


ANSWER_FILES = {"arena_hard_gpt-4-0314.jsonl", "arena_hard_gpt-4-0613.jsonl", "vicuna_bench_ref_gpt4.jsonl"}


@pytest.mark.parametrize("path", sorted((TEST_DATA / "raw").iterdir()), ids=lambda p: p.name)
def test_raw_source_formats_load(path):
    if path.name in ANSWER_FILES:
        assert len(load_responses(path)) > 0
    else:
        exs = load_examples(path)
        assert exs and all(e.prompt_text for e in exs)


SHIPPED = REPO / "gad" / "data" / "datasets"


def test_the_shipped_sets_are_all_there():
    """What the project ships, on any clone: the bundled sets (each one loaded by test_bundled_sets_load), so
    an empty or moved folder fails here rather than parametrizing to nothing."""
    shipped = sorted(p.name for p in SHIPPED.glob("*.jsonl"))
    assert len(shipped) >= 5 and "teacher_alpaca_gpt4_demo_999.jsonl" in shipped, shipped


def test_every_shared_dataset_file_loads():
    """The full files in ../shared/datasets, where the workplace or CI lays them beside the clone."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: the full shared data sets are only checked where they are laid beside "
                    f"the checkout (the shipped sets in gad/data/datasets are checked on every clone)")
    count = 0
    for path in sorted(SHARED.glob("*.jsonl")) + sorted((SHARED / "raw").iterdir()):
        if path.name in ANSWER_FILES:
            assert load_responses(path), path
        else:
            assert load_examples(path), path
        count += 1
    assert count >= 17
    # Raw Arena-Hard questions joined with GPT-4's answers: every prompt gets its teacher response.
    joined = load_examples(SHARED / "raw" / "arena_hard_question.jsonl",
                           SHARED / "raw" / "arena_hard_gpt-4-0314.jsonl", require_response=True)
    assert len(joined) == 500


def test_reading_reports_how_far_into_the_file_it_is(tmp_path):
    """read_rows' progress: bytes of the stored file read so far (compressed bytes for .gz), growing, ending at
    the file's size."""
    import gzip

    from gad.data.readers import PROGRESS_EVERY, read_rows

    rows = [{"prompt": f"question {i} " + "w" * (i % 50)} for i in range(3 * PROGRESS_EVERY + 5)]
    plain = write_jsonl(tmp_path / "p.jsonl", rows)
    packed = tmp_path / "p.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    for path in (plain, packed):
        seen: list[tuple[int, int]] = []
        assert len(list(read_rows(path, progress=lambda done, total, seen=seen: seen.append((done, total))))) \
            == len(rows)
        size = path.stat().st_size
        assert len(seen) == 4 and seen[-1] == (size, size) and {t for _, t in seen} == {size}
        assert [d for d, _ in seen] == sorted(d for d, _ in seen) and 0 < seen[0][0] < size
