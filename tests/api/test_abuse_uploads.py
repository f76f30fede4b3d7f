"""Hostile uploads and bodies, each answered with a bounded 4xx that names the limit, over real
sockets: a gzip bomb, a file of a million tiny lines, NUL characters (SQLite and PostgreSQL),
anonymous chunked uploads (refused before the body is read), chunked uploads past the cap, and
JSON nested too deeply. Sizes are small: the servers here have small caps."""

from __future__ import annotations

import gzip
import io
import json
import socket

import pytest
from sqlalchemy import func, select

from app.db.models import Dataset
from tests.api.conftest import ServerThread, free_port, make_studio, serving
from tests.studio.conftest import pg_admin_url, pg_url  # noqa: F401 (PostgreSQL fixtures)


@pytest.fixture(scope="module")
def capped(tmp_path_factory):
    """A server with a 1 MB upload cap and a 1,000-record cap."""
    with serving(tmp_path_factory.mktemp("capped"), GAD_MAX_UPLOAD_MB=1, GAD_MAX_UPLOAD_ROWS=1000) as studio:
        yield studio


def upload(c, filename: str, data: bytes):
    return c.post("/api/datasets", files={"file": (filename, data, "application/octet-stream")})


def n_datasets(studio) -> int:
    with studio.ctx.sessions() as s:
        return s.scalar(select(func.count()).select_from(Dataset))


def test_a_gzip_bomb_is_refused_with_413_naming_the_limit(capped):
    bomb = gzip.compress(b" " * (40 * 2**20), 9)          # 40 MB of blanks in ~40 kB
    assert len(bomb) < 2**20
    before = n_datasets(capped)
    with capped.client("researcher") as c:
        r = upload(c, "bomb.jsonl.gz", bomb)
    assert r.status_code == 413, r.text
    message = r.json()["message"]
    assert "bomb.jsonl.gz" in message and "10,485,760 bytes" in message and "GAD_MAX_UPLOAD_MB" in message
    assert n_datasets(capped) == before
    assert not list((capped.ctx.settings.data_dir / "uploads").glob("*/*"))


def test_a_small_gzip_upload_still_works(capped):
    data = gzip.compress(b"".join(json.dumps({"prompt": f"q{i}"}).encode() + b"\n" for i in range(50)))
    with capped.client("researcher") as c:
        r = upload(c, "fine.jsonl.gz", data)
    assert r.status_code == 201 and r.json()["n_prompts"] == 50, r.text


def test_too_many_records_are_refused_with_the_limit_named(capped):
    lines = b"prompt\n" + b"x\n" * 1001                  # one-character lines: 1,001 records, cap 1,000
    with capped.client("researcher") as c:
        r = upload(c, "tiny.csv", lines)
        assert r.status_code == 413, r.text
        assert "1,000 records" in r.json()["message"] and "GAD_MAX_UPLOAD_ROWS" in r.json()["message"]
        r = upload(c, "tiny.csv", b"prompt\n" + b"x\n" * 1000)
        assert r.status_code == 201 and r.json()["n_prompts"] == 1000, r.text


def test_a_million_one_character_lines_get_a_bounded_answer(capped):
    with capped.client("researcher") as c:
        r = upload(c, "million.jsonl", b"x\n" * 500_000)   # 1 MB, the cap: not JSON, told at line 1
        assert r.status_code == 422 and ":1" in r.json()["message"]
        r = upload(c, "million.csv.gz", gzip.compress(b"prompt\n" + b"x\n" * 1_000_000))
        assert r.status_code == 413 and "GAD_MAX_UPLOAD_ROWS" in r.json()["message"], r.text


def test_blank_lines_and_rows_are_bounded_too(capped):
    with capped.client("researcher") as c:
        r = upload(c, "blank.csv.gz", gzip.compress(b"prompt\n" + b" \n" * 5000))      # 5,000 blank rows, cap 1,000
        assert r.status_code == 413 and "blank lines or rows" in r.json()["message"], r.text
        r = upload(c, "newlines.jsonl.gz", gzip.compress(b"\n" * (8 * 2**20)))     # skipped a block at a time
        assert r.status_code == 422 and "no records" in r.json()["message"], r.text


def test_a_json_document_may_not_expand_past_the_upload_cap(capped):
    doc = ("[" + ",".join(json.dumps({"prompt": "p" * 1000}) for _ in range(1500)) + "]").encode()  # 1.5 MB
    with capped.client("researcher") as c:
        r = upload(c, "doc.json.gz", gzip.compress(doc))
    assert r.status_code == 413 and "JSON and Parquet: GAD_MAX_UPLOAD_MB" in r.json()["message"], r.text


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_nul_character_is_refused_naming_file_line_and_field(backend, tmp_path, request):
    db = None if backend == "sqlite" else request.getfixturevalue("pg_url")
    data = (json.dumps({"prompt": "fine"}) + "\n" + json.dumps({"prompt": "ok", "response": "bad\u0000byte"}) + "\n"
            + json.dumps({"prompt": "ok", "id": "x\u0000"}) + "\n")
    with serving(tmp_path, db) as studio, studio.client("researcher") as c:
        r = upload(c, "nul.jsonl", data.encode())
        assert r.status_code == 422, r.text
        assert "nul.jsonl:2" in r.json()["message"] and "'response'" in r.json()["message"]
        r = c.post("/api/datasets", files={"file": ("ok.jsonl", b'{"prompt": "p"}\n')}, data={"name": "a\x00b"})
        assert r.status_code == 201 and r.json()["name"] == "ab", r.text   # a NUL in the name is dropped


def _raw(url: str, head: bytes, body: bytes = b"", timeout: float = 10) -> tuple[int, bytes]:
    """Send a request by hand (so a body can be chunked, partial, or never sent); (status, response)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head_end = data.find(b"\r\n\r\n") + 4
        length = next((int(line.split(b":")[1]) for line in data[:head_end].lower().split(b"\r\n")
                       if line.startswith(b"content-length:")), 0)
        while len(data) < head_end + length:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
        return status, data


def _chunked_head(token: str | None = None, path: str = "/api/datasets") -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: multipart/form-data; boundary=zz\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n").encode()


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def test_an_anonymous_chunked_upload_is_refused_before_its_body_is_read(capped):
    # Only the headers: the answer must come without one byte of the body.
    status, response = _raw(capped.url, _chunked_head())
    assert status == 401 and b"log in" in response
    status, _ = _raw(capped.url, _chunked_head("gad_not-a-token"))
    assert status == 401
    status, _ = _raw(capped.url, _chunked_head(capped.tokens["annotator"]))   # a role that may not upload
    assert status == 403


def test_a_chunked_upload_past_the_cap_is_refused_and_one_under_it_is_stored(capped):
    token = capped.tokens["researcher"]
    block = b"z" * 65536
    status, response = _raw(capped.url, _chunked_head(token), b"".join(_chunk(block) for _ in range(20)))
    assert status == 413 and b"GAD_MAX_UPLOAD_MB" in response

    body = io.BytesIO()
    body.write(b'--zz\r\nContent-Disposition: form-data; name="file"; filename="c.jsonl"\r\n\r\n')
    body.write(b"".join(json.dumps({"prompt": f"chunked {i}"}).encode() + b"\n" for i in range(300)))
    body.write(b"\r\n--zz--\r\n")
    raw = body.getvalue()
    chunks = b"".join(_chunk(raw[i:i + 1000]) for i in range(0, len(raw), 1000)) + b"0\r\n\r\n"
    status, response = _raw(capped.url, _chunked_head(token), chunks)
    assert status == 201, response


@pytest.mark.parametrize("path", ["/api/auth/login", "/api/endpoints", "/v1/chat/completions"])
def test_deeply_nested_json_gets_a_clear_400(capped, path):
    nested = "[" * 100_000 + "]" * 100_000
    with capped.client("admin") as c:
        r = c.post(path, content='{"model": "m", "messages": ' + nested + "}",
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "body" and "nested too deeply" in r.json()["message"]


def test_a_locked_sqlite_database_is_a_503_with_retry_after(tmp_path):
    import sqlite3

    import httpx
    from sqlalchemy.exc import OperationalError

    app, ctx, _, _ = make_studio(tmp_path)

    @app.get("/locked-for-the-test")
    def locked():
        raise OperationalError("UPDATE api_tokens ...", {}, sqlite3.OperationalError("database is locked"))

    @app.get("/broken-for-the-test")
    def broken():
        raise OperationalError("SELECT ...", {}, sqlite3.OperationalError("no such table: x"))

    try:
        with ServerThread(app, free_port()) as srv:
            r = httpx.get(f"{srv.url}/locked-for-the-test")
            assert r.status_code == 503 and r.headers["Retry-After"] == "5" and "busy" in r.json()["message"]
            assert httpx.get(f"{srv.url}/broken-for-the-test").status_code == 500
    finally:
        ctx.close()
