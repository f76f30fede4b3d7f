"""Uploads as people make them: good files, and every bad kind, each answered with a clear 4xx
that names the line and field, and nothing half stored."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.db.models import Dataset, Prompt

GOOD = "".join(json.dumps({"id": f"p{i}", "prompt": f"Question {i}?", "response": f"Answer {i}."}) + "\n"
               for i in range(30))


def counts(studio) -> tuple[int, int]:
    with studio.ctx.sessions() as s:
        return (s.scalar(select(func.count()).select_from(Dataset)), s.scalar(select(func.count()).select_from(Prompt)))


def upload(c, filename: str, data: bytes, **form):
    return c.post("/api/datasets", files={"file": (filename, data, "application/octet-stream")}, data=form)


def test_a_good_upload_is_previewed_split_and_described(studio):
    with studio.client("researcher") as c:
        r = upload(c, "pairs.jsonl", GOOD.encode(), name="my set", test_fraction="0.2")
        assert r.status_code == 201, r.text
        ds = r.json()
        assert (ds["name"], ds["n_prompts"], ds["with_response"], ds["n_test"]) == ("my set", 30, 30, 6)
        page = c.get(f"/api/datasets/{ds['id']}/prompts", params={"limit": 5, "offset": 5}).json()
        assert page["total"] == 30 and [p["idx"] for p in page["items"]] == [5, 6, 7, 8, 9]
        assert page["items"][0]["prompt"].startswith("Question")
        stats = c.get(f"/api/datasets/{ds['id']}").json()
        assert sum(stats["prompt_words"]["counts"]) == 30 and stats["response_words"]["max"] == 2


@pytest.mark.parametrize("name,data,status,needle", [
    ("empty.jsonl", b"", 422, "empty"),
    ("blank.jsonl", b"\n\n  \n", 422, "empty"),
    ("notes.docx", b"PK\x03\x04 not a prompt file", 422, "unsupported file type"),
    ("half.jsonl", (GOOD[:200].rsplit("\n", 1)[0] + "\n" + '{"prompt": 5}\n').encode(), 422, "field 'prompt'"),
    ("broken.jsonl", b'{"prompt": "ok"}\n{"prompt": "unterminated\n', 422, ":2"),
    ("../../etc/passwd", b"root:x:0:0", 422, "unsupported file type"),
    ("a" * 250 + ".jsonl", b'{"prompt": ""}\n', 422, ":1"),
    ("a" * 5000 + ".jsonl", b'{"prompt": "x"}\n', 400, "file name under 255 characters"),
    ("nul\x00byte.jsonl", b'{"prompt": "x", "response": 3}\n', 422, "response"),
])
def test_bad_uploads_are_refused_clearly_and_leave_nothing(studio, name, data, status, needle):
    before = counts(studio)
    with studio.client("researcher") as c:
        r = upload(c, name, data)
    assert r.status_code == status, r.text
    body = r.json()
    assert needle in body["message"] and body.get("field")
    assert "/tmp" not in body["message"] and "upload." not in body["message"]   # never our scratch path
    assert len(body["message"]) < 600
    assert counts(studio) == before
    assert not list((studio.ctx.settings.data_dir / "uploads").glob("*/*"))        # no scratch left behind


def test_an_oversized_upload_is_refused_before_it_is_read_whole(studio):
    big = ('{"prompt": "' + "x" * 1000 + '"}\n') * 100   # ~100 kB; the test studio's limit is 0.05 MB
    with studio.client("researcher") as c:
        r = upload(c, "big.jsonl", big.encode())
    assert r.status_code == 413 and "limit" in r.json()["message"]


def test_file_names_are_never_paths(studio):
    with studio.client("researcher") as c:
        r = upload(c, "../../../../tmp/evil name.jsonl", GOOD.encode())
    assert r.status_code == 201
    assert r.json()["source"] == "evil name.jsonl"
    assert not (studio.ctx.settings.data_dir.parent / "evil name.jsonl").exists()
