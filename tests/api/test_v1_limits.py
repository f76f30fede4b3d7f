"""/v1 under abuse: every answer bounded. Over-long prompts are refused (400), out-of-range values
are 422 (never 500), a burst to one model gets 429 quickly while /health answers, and a client that
goes away (streaming or not) stops its generation and frees the model's turn."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.api.conftest import ServerThread, free_port, make_studio, wait_for

MODEL = "base/tiny"


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model):
    tmp = tmp_path_factory.mktemp("v1")
    app, ctx, _env, tokens = make_studio(tmp, GAD_BASE_MODELS=str(tiny_model), GAD_MAX_PROMPT_TOKENS=200)
    with ServerThread(app, free_port()) as srv:
        client = httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {tokens['researcher']}"},
                              timeout=120)
        yield srv.url, client, app, str(tiny_model), tokens
        client.close()
    ctx.close()


def _chat(content: str = "hello", **kw) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "temperature": 0, **kw}


def test_a_prompt_over_the_token_cap_is_refused_with_400(served):
    _, c, *_ = served
    r = c.post("/v1/chat/completions", json=_chat("word " * 600, max_tokens=2))
    assert r.status_code == 400 and r.json()["field"] == "messages" and "200" in r.json()["message"], r.text
    r = c.post("/v1/chat/completions", json=_chat("x" * 3_000_000, max_tokens=2))      # refused before tokenising
    assert r.status_code == 400, r.text
    assert c.post("/v1/chat/completions", json=_chat("hello", max_tokens=2)).status_code == 200


@pytest.mark.parametrize("extra, status", [
    ({"top_p": 1e-300}, 200), ({"temperature": 1e-300}, 200), ({"seed": 1e23}, 422), ({"seed": -1}, 422),
    ({"max_tokens": 10**9}, 422), ({"n": 1000}, 422)])
def test_extreme_values_get_an_answer_or_a_422_never_a_500(served, extra, status):
    _, c, *_ = served
    r = c.post("/v1/chat/completions", json=_chat(**{"max_tokens": 3, **extra}))
    assert r.status_code == status, r.text


def test_huge_and_deeply_nested_bodies_are_refused(served):
    _, c, *_ = served
    r = c.post("/v1/chat/completions", content=b'{"model": "base/tiny", "messages": [{"role": "user", "content": "'
               + b"a" * 50_000_000 + b'"}]}', headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    deep = "[" * 50_000 + "]" * 50_000
    nested = '{"model": "base/tiny", "messages": [{"role": "user", "content": "hi", "x": ' + deep + "}]}"
    r = c.post("/v1/chat/completions", content=nested.encode(), headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, r.text


def _model_lock(app, path):
    return app.state.models.lock(path)


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_goes_away_frees_the_model(served, stream):
    url, _, app, path, tokens = served
    body = _chat("tell me everything", max_tokens=32768, stream=stream)  # greedy: runs to the context's end
    headers = {"Authorization": f"Bearer {tokens['researcher']}"}
    with httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(120, read=3)) as c:
        if stream:
            with c.stream("POST", "/v1/chat/completions", json=body) as r:
                assert r.status_code == 200
                for n, _line in enumerate(r.iter_lines()):
                    if n > 5:
                        break                           # leave after a few tokens
        else:
            with pytest.raises(httpx.ReadTimeout):      # the client gives up after 3 s
                c.post("/v1/chat/completions", json=body)
    # Generating the rest would hold the model's turn for 20+ s; the disconnect frees it at once.
    wait_for(lambda: not _model_lock(app, path).locked(), timeout=8, interval=0.1, what="the model's turn to be freed")
    with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
        assert c.post("/v1/chat/completions", json=_chat(max_tokens=2)).status_code == 200


def test_fifty_requests_to_one_model_are_bounded_and_health_answers(served):
    url, _, app, path, tokens = served
    headers = {"Authorization": f"Bearer {tokens['researcher']}"}
    health: list[float] = []
    done = threading.Event()

    def one(_):
        with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
            return c.post("/v1/chat/completions", json=_chat("count", max_tokens=200)).status_code

    def probe():
        with httpx.Client(base_url=url, timeout=10) as c:
            while not done.is_set():
                t = time.perf_counter()
                assert c.get("/health").status_code == 200
                health.append(time.perf_counter() - t)

    watcher = threading.Thread(target=probe, daemon=True)
    watcher.start()
    with ThreadPoolExecutor(50) as pool:
        codes = Counter(pool.map(one, range(50)))
    done.set()
    watcher.join(timeout=15)
    assert set(codes) <= {200, 429} and codes[200] >= 1 and codes[429] >= 1, codes
    assert health, "/health never answered during the burst"   # each probe had 10 s (httpx timeout)
    assert not _model_lock(app, path).locked()
