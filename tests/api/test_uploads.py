"""Uploads as people make them: good files, and every bad kind, each answered with a clear 4xx
that names the line and field, and nothing half stored."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.db.models import Dataset, Prompt
from tests.api.conftest import wait_for

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


def _job(c, job_id: int) -> dict:
    return c.get(f"/api/jobs/{job_id}").json()


def test_an_upload_not_waited_for_is_a_202_job_that_a_worker_imports_with_progress(studio):
    """The server only stores the bytes: with wait=0 the answer is the job (Location to follow), and the
    io worker's job parses and imports the file, its progress on the row, its result naming the dataset."""
    with studio.client("researcher") as c:
        r = c.post("/api/datasets", params={"wait": 0},
                   files={"file": ("later.jsonl", GOOD.encode(), "application/octet-stream")}, data={"name": "later"})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["kind"] == "upload" and r.headers["Location"] == f"/api/jobs/{job['id']}"
        assert job["params"]["source"] == "later.jsonl" and "path" not in json.dumps(job["params"])
        done = wait_for(lambda: (j := _job(c, job["id"]))["status"] in ("succeeded", "failed") and j, 60,
                        "the upload job")
        assert done["status"] == "succeeded", done
        assert (done["done"], done["total"], done["progress"], done["stats"]["phase"]) == (1000, 1000, 1.0, "done")
        ds = c.get(f"/api/datasets/{done['result']['dataset_id']}").json()
        assert (ds["name"], ds["n_prompts"], done["result"]["n_prompts"]) == ("later", 30, 30)
    assert not any((studio.ctx.settings.data_dir / "uploads").iterdir())   # the file went with the answer


def test_a_refused_file_fails_its_job_with_the_line_and_field_not_a_traceback(studio):
    before = counts(studio)
    bad = (GOOD.splitlines()[0] + "\n" + '{"prompt": ["not", "text"]}\n').encode()
    with studio.client("researcher") as c:
        r = c.post("/api/datasets", params={"wait": 0}, files={"file": ("bad.jsonl", bad)})
        assert r.status_code == 202, r.text
        job = wait_for(lambda: (j := _job(c, r.json()["id"]))["status"] in ("succeeded", "failed") and j, 60,
                       "the upload job")
    assert job["status"] == "failed"
    assert job["result"]["http_status"] == 422 and job["result"]["where"] == "bad.jsonl:2", job
    assert job["error"].startswith("bad.jsonl:2: field 'prompt")
    assert "Traceback" not in job["error"] and "Error:" not in job["error"]
    assert counts(studio) == before
