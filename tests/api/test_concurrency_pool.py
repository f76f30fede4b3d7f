"""The database pool under load: sized against the handler threads, never held while a request waits
for a model, overload answered 503 with Retry-After (never 500), and /health independent of both the
pool and the handler threads. SQLite and PostgreSQL, real servers over loopback."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.api.conftest import ServerThread, free_port, make_studio
from tests.studio.conftest import pg_admin_url, pg_url  # noqa: F401 (fixtures)


def test_the_pool_has_a_connection_for_every_handler_thread(tmp_path):
    _app, ctx, _env, _ = make_studio(tmp_path, GAD_WEB_THREADS=64)
    try:
        pool = ctx.engine.pool
        assert pool.size() + pool._max_overflow >= 64 + 1
    finally:
        ctx.close()


def test_an_exhausted_pool_answers_503_with_retry_after_and_health_still_answers(tmp_path):
    app, ctx, _env, tokens = make_studio(tmp_path, GAD_WEB_THREADS=2)
    pool = ctx.engine.pool
    held = [ctx.engine.connect() for _ in range(pool.size() + pool._max_overflow)]  # every connection busy
    try:
        with ServerThread(app, free_port()) as srv:
            with httpx.Client(base_url=srv.url, timeout=5) as c:
                assert c.get("/health").json()["database"] == "ok"     # its own connection, its own thread
            with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {tokens['researcher']}"},
                              timeout=60) as c:
                r = c.get("/api/runs")
            assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0, r.text
            assert "busy" in r.json()["message"]
    finally:
        for conn in held:
            conn.close()
        ctx.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sixty_concurrent_chats_give_no_500_and_health_keeps_answering(backend, tmp_path, tiny_model, request):
    db_url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    app, ctx, _env, tokens = make_studio(tmp_path, db_url=db_url, GAD_BASE_MODELS=str(tiny_model))
    body = {"model": "base/tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 30, "temperature": 0}
    done, health = threading.Event(), []
    try:
        with ServerThread(app, free_port()) as srv:
            def chat(_):
                with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {tokens['researcher']}"},
                                  timeout=120) as c:
                    return c.post("/v1/chat/completions", json=body).status_code

            def probe():
                with httpx.Client(base_url=srv.url, timeout=10) as c:   # a stalled /health fails the probe
                    while not done.is_set():
                        health.append(c.get("/health").status_code)

            watcher = threading.Thread(target=probe, daemon=True)
            watcher.start()
            with ThreadPoolExecutor(60) as pool:
                codes = Counter(pool.map(chat, range(60)))
            done.set()
            watcher.join(timeout=15)
        assert set(codes) <= {200, 429} and codes[200] >= 1, codes
        assert health and set(health) == {200}, Counter(health)
    finally:
        ctx.close()
