"""Files people actually have: each hostile file is made here, and each gets data or a clear DataError."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

from gad.data.examples import DataError, load_examples, require_responses

ROWS = [{"prompt": "Café au lait?", "response": "Oui, s'il vous plaît."}, {"prompt": "Two", "response": "2"}]
EXPECTED = [(r["prompt"], r["response"]) for r in ROWS]


def write_jsonl(path: Path, rows, encoding="utf-8") -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding=encoding)
    return path


def pairs(exs) -> list[tuple[str, str | None]]:
    return [(e.prompt_text, e.response) for e in exs]


# --- text the tokenizer would choke on --------------------------------------------------------------
def test_lone_surrogate_is_a_located_data_error_not_a_tokenizer_crash(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_text('{"prompt": "fine", "response": "ok"}\n{"prompt": "broken \\ud800 emoji", "response": "x"}\n')
    with pytest.raises(DataError, match=r"s\.jsonl:2: field 'prompt' holds an invalid character at position 8 "
                                        r"\(a lone surrogate, \\ud800"):
        load_examples(p)
    q = tmp_path / "m.jsonl"  # inside a conversation, and in the teacher's response
    q.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "\\udfff"}]}\n')
    with pytest.raises(DataError, match=r"m\.jsonl:1: field 'messages\[1\]\.content' holds an invalid character"):
        load_examples(q)


# --- encodings, byte-order marks, compression, misnamed files ----------------------------------------
def excel_csv(path: Path, rows, encoding="utf-8-sig", delimiter=",", header=("prompt", "response")) -> Path:
    with path.open("w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(header)
        w.writerows([[r["prompt"], r["response"]] for r in rows])
    return path


def test_excel_csv_utf8_with_bom_and_capitalised_headers(tmp_path):
    assert pairs(load_examples(excel_csv(tmp_path / "excel.csv", ROWS, header=("Prompt", "Response")))) == EXPECTED
    spaced = excel_csv(tmp_path / "t.csv", ROWS, header=(" PROMPT ", "Teacher Response"))
    assert pairs(load_examples(spaced)) == EXPECTED


def test_json_and_jsonl_with_bom(tmp_path):
    assert pairs(load_examples(write_jsonl(tmp_path / "b.jsonl", ROWS, "utf-8-sig"))) == EXPECTED
    (tmp_path / "b.json").write_text(json.dumps(ROWS, ensure_ascii=False), encoding="utf-8-sig")
    assert pairs(load_examples(tmp_path / "b.json")) == EXPECTED


def test_semicolon_csv_tsv_and_gzip(tmp_path):
    expected = EXPECTED
    assert pairs(load_examples(excel_csv(tmp_path / "eu.csv", ROWS, delimiter=";"))) == expected
    assert pairs(load_examples(excel_csv(tmp_path / "t.tsv", ROWS, "utf-8", delimiter="\t"))) == expected
    (tmp_path / "z.jsonl.gz").write_bytes(gzip.compress(write_jsonl(tmp_path / "z.jsonl", ROWS).read_bytes()))
    assert pairs(load_examples(tmp_path / "z.jsonl.gz")) == expected
    (tmp_path / "c.csv.gz").write_bytes(gzip.compress(excel_csv(tmp_path / "c.csv", ROWS).read_bytes()))
    assert pairs(load_examples(tmp_path / "c.csv.gz")) == expected


def test_semicolons_inside_a_comma_csv_stay_text(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text('prompt,response\n"a; b; c",x\n')
    assert pairs(load_examples(p)) == [("a; b; c", "x")]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_utf16_and_utf32_with_bom_load(tmp_path, encoding):
    assert pairs(load_examples(write_jsonl(tmp_path / "u.jsonl", ROWS, encoding))) == EXPECTED
    assert pairs(load_examples(excel_csv(tmp_path / "u.csv", ROWS, encoding))) == EXPECTED


def test_windows_1252_is_refused_with_line_column_and_hint(tmp_path):
    p = excel_csv(tmp_path / "w.csv", [{"prompt": "plain", "response": "ok"}] + ROWS, encoding="cp1252")
    with pytest.raises(DataError) as info:
        load_examples(p)
    msg = str(info.value)
    assert msg.startswith(f"{p}:3: not UTF-8 text: byte 0xe9 at column 4")
    assert "Windows-1252" in msg and "'é'" in msg and "CSV UTF-8" in msg


def test_utf16_without_bom_is_refused_with_a_hint(tmp_path):
    p = tmp_path / "n.jsonl"
    p.write_bytes(write_jsonl(tmp_path / "tmp.jsonl", ROWS).read_text(encoding="utf-8").encode("utf-16-le"))
    with pytest.raises(DataError, match=r"n\.jsonl:1: .*UTF-16 .*without a byte-order mark"):
        load_examples(p)


def test_misnamed_files_say_what_they_are(tmp_path):
    import pandas as pd

    pd.DataFrame(ROWS).to_parquet(tmp_path / "real.parquet")
    (tmp_path / "p.jsonl").write_bytes((tmp_path / "real.parquet").read_bytes())
    with pytest.raises(DataError, match=r"p\.jsonl: this is a Parquet file, not JSONL text: rename it to p\.parquet"):
        load_examples(tmp_path / "p.jsonl")
    (tmp_path / "g.jsonl").write_bytes(gzip.compress(b'{"prompt": "x"}\n'))
    with pytest.raises(DataError, match=r"gzip-compressed: name it g\.jsonl\.gz"):
        load_examples(tmp_path / "g.jsonl")
    (tmp_path / "x.csv").write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(DataError, match=r"Excel \.xlsx workbook\?\), not CSV text"):
        load_examples(tmp_path / "x.csv")
    (tmp_path / "book.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError,
                       match=r"unsupported file type '\.xlsx' \(an Excel workbook: save it as 'CSV UTF-8'\)"):
        load_examples(tmp_path / "book.xlsx")
    (tmp_path / "t.parquet").write_text("prompt\nhello\n")
    with pytest.raises(DataError, match=r"t\.parquet: not a Parquet file"):
        load_examples(tmp_path / "t.parquet")
    (tmp_path / "bad.jsonl.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match=r"bad\.jsonl\.gz: not a valid gzip file"):
        load_examples(tmp_path / "bad.jsonl.gz")
    with pytest.raises(DataError, match="is a folder"):
        load_examples(tmp_path)


# --- OpenAI conversations with tool use ----------------------------------------------------------------
def test_developer_tool_and_function_messages_become_text_turns(tmp_path):
    row = {"messages": [
        {"role": "developer", "content": "Answer briefly."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
            {"id": "c2", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "18C, sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "25C"}]},
        {"role": "assistant", "content": "Paris 18C and sunny; Rome 25C."},
        {"role": "user", "content": "And Oslo?"},
        {"role": "assistant", "content": None, "function_call": {"name": "weather", "arguments": '{"city": "Oslo"}'}},
        {"role": "function", "name": "weather", "content": "3C"},
        {"role": "assistant", "content": "Oslo: 3C."}]}
    [ex] = load_examples(write_jsonl(tmp_path / "tools.jsonl", [row]))
    assert [m["role"] for m in ex.messages] == ["system", "user", "assistant", "user", "assistant", "user",
                                               "assistant", "user"]
    assert ex.messages[0]["content"] == "Answer briefly."
    assert ex.messages[2]["content"] == ('[tool call] weather({"city": "Paris"})\n'
                                         '[tool call] weather({"city": "Rome"})')
    assert ex.messages[3]["content"] == "[tool result: c1] 18C, sunny\n\n[tool result: c2] 25C"  # merged
    assert ex.messages[-1]["content"] == "[tool result: weather] 3C" and ex.response == "Oslo: 3C."


def test_null_content_without_tool_calls_is_still_an_error(tmp_path):
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None},
                        {"role": "user", "content": "again"}]}
    with pytest.raises(DataError, match=r"field 'messages\[1\]\.content' is null \(and the turn calls no tool\)"):
        load_examples(write_jsonl(tmp_path / "n.jsonl", [row]))


# --- locations, duplicates, collisions -------------------------------------------------------------------
def test_multi_line_csv_record_error_names_its_first_line(tmp_path):
    p = tmp_path / "ml.csv"
    p.write_text('prompt,response\nok,"one\ntwo"\n,"first line\nsecond line\nthird line"\nlast,x\n')
    with pytest.raises(DataError, match=r"ml\.csv:4: field 'prompt': the prompt is empty"):
        load_examples(p)
    good = tmp_path / "good.csv"
    good.write_text('prompt,response\n"a\nb",x\n\nc,y\n')
    assert [e.where.rsplit(":", 1)[1] for e in load_examples(good)] == ["2", "5"]


def test_csv_row_with_more_cells_than_the_header(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("prompt,response\nhello, world,oops\n")
    with pytest.raises(DataError, match=r"x\.csv:2: 3 cells but the header has 2 columns"):
        load_examples(p)


def test_duplicate_ids_are_refused_with_both_places(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl",
                    [{"id": 1, "prompt": "a"}, {"id": 2, "prompt": "b"}, {"id": 1, "prompt": "c"}])
    with pytest.raises(DataError, match=r"d\.jsonl:3: duplicate id '1' \(first at .*d\.jsonl:1\)"):
        load_examples(p)


def test_field_names_differing_only_in_case_are_ambiguous(tmp_path):
    p = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "a", "Prompt": "b"}])
    with pytest.raises(DataError, match=r"fields 'prompt' and 'Prompt' differ only in case"):
        load_examples(p)


# --- a collected teacher file with refused and failed prompts -------------------------------------------
def collected(tmp_path) -> Path:
    rows = [{"id": f"p{i}", "messages": [{"role": "user", "content": f"q{i}"}], "response": f"a{i}", "status": "ok"}
            for i in range(6)]
    rows[1].update(response=None, status="failed", error="HTTP 400")
    rows[4].update(response="", status="refused", error="content filter")
    return write_jsonl(tmp_path / "teacher.jsonl", rows)


def test_collected_file_with_failures_says_why_and_how_to_skip(tmp_path):
    with pytest.raises(DataError) as info:
        load_examples(collected(tmp_path), require_response=True)
    msg = str(info.value)
    assert (":2: no teacher response for prompt id 'p1' "
            "(2 of 6 records lack one: 1 failed, 1 refused when collected)") in msg
    assert "--retry-failed" in msg and "--skip-missing-responses" in msg and "the 4 that have one" in msg


def test_skip_missing_keeps_the_answered_rows(tmp_path):
    kept = load_examples(collected(tmp_path), require_response=True, skip_missing=True)
    assert [e.id for e in kept] == ["p0", "p2", "p3", "p5"]
    kept, dropped = require_responses(load_examples(collected(tmp_path)), skip=True)
    assert len(kept) == 4 and [e.id for e in dropped] == ["p1", "p4"]
    none = write_jsonl(tmp_path / "none.jsonl", [{"prompt": "a"}, {"prompt": "b"}])
    with pytest.raises(DataError, match="no record has a teacher response"):
        load_examples(none, require_response=True, skip_missing=True)


def test_limit_applies_before_the_response_check(tmp_path):
    # the first 1 row has its response; a missing one further down does not block a limited run
    assert [e.id for e in load_examples(collected(tmp_path), require_response=True, limit=1)] == ["p0"]
