"""Teacher collection against a real local OpenAI-compatible server, through the official SDK."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from gad.api_client import ChatRunner, Endpoint, EndpointError, JsonlStore, cache_key
from gad.data import Example, load_examples
from gad.devserver import DevServer
from gad.teacher import collect_api, collect_local
from tests.conftest import REPO, read_jsonl


def ep(server, **kw) -> Endpoint:
    base = dict(base_url=server.base_url, model="dev", api_key_env="GAD_TEST_KEY", timeout=1.0, max_retries=3,
                backoff_base=0.01, backoff_max=2.0)
    return Endpoint(**{**base, **kw})


@pytest.fixture(autouse=True)
def test_key(monkeypatch):
    monkeypatch.setenv("GAD_TEST_KEY", "sk-test-secret-value")


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_429_is_retried_after_retry_after():
    with DevServer(faults=[{"match": "slow", "fault": "429", "times": 1, "retry_after": 0.5}]) as srv:
        t0 = time.monotonic()
        [res] = ChatRunner(ep(srv)).run([ask("slow down")])
        elapsed = time.monotonic() - t0
        assert res["status"] == "ok"
        assert elapsed >= 0.5                        # waited as told, not the 0.01 s backoff
        assert [r["fault"] for r in srv.requests()] == ["429", None]


@pytest.mark.parametrize("fault", ["500", "503", "malformed", "reset", "timeout", "empty"])
def test_transient_faults_are_retried_until_success(fault):
    with DevServer(faults=[{"match": "x", "fault": fault, "times": 2}], timeout_sleep=3) as srv:
        runner = ChatRunner(ep(srv))
        [res] = runner.run([ask("x marks the spot")])
        assert res["status"] == "ok" and "careful answer" in res["response"]
        assert len(srv.requests()) == 3 and runner.ledger.retries == 2


def test_exhausted_retries_are_recorded_and_not_cached(tmp_path):
    with DevServer(faults=[{"match": "down", "fault": "503"}]) as srv:
        store = JsonlStore(tmp_path / "c.jsonl")
        res = ChatRunner(ep(srv, max_retries=2), store).run([ask("down again"), ask("fine")])
        assert res[0]["status"] == "failed" and "gave up after 3 attempts" in res[0]["error"]
        assert res[1]["status"] == "ok"
        assert store.get(cache_key(ep(srv, max_retries=2), ask("down again"))) is None  # retried next run


def test_final_errors_do_not_stop_the_others_and_are_not_retried(tmp_path):
    faults = [{"match": "bad", "fault": "400"}, {"match": "naughty", "fault": "content_filter"}]
    with DevServer(faults=faults) as srv:
        store = JsonlStore(tmp_path / "c.jsonl")
        prompts = [ask("bad one"), ask("naughty one"), ask("good one")]
        res = ChatRunner(ep(srv), store).run(prompts)
        assert [r["status"] for r in res] == ["failed", "refused", "ok"]
        assert "HTTP 400" in res[0]["error"] and "content filter" in res[1]["error"]
        assert len(srv.requests()) == 3                  # each asked exactly once
        again = ChatRunner(ep(srv), JsonlStore(tmp_path / "c.jsonl")).run(prompts)
        assert [r["status"] for r in again] == ["failed", "refused", "ok"]
        assert len(srv.requests()) == 3                  # final outcomes come from the cache
        ChatRunner(ep(srv), JsonlStore(tmp_path / "c.jsonl"), retry_final=True).run(prompts)
        assert len(srv.requests()) == 5                  # unless asked to retry them


def test_rejected_key_stops_the_run_without_leaking_it():
    with DevServer(faults=[{"match": "*", "fault": "401"}]) as srv:
        with pytest.raises(EndpointError) as info:
            ChatRunner(ep(srv, concurrency=1)).run([ask(f"q{i}") for i in range(20)])
        assert "GAD_TEST_KEY" in str(info.value) and "sk-test-secret-value" not in str(info.value)
        assert len(srv.requests()) == 1


def test_missing_key_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("GAD_TEST_KEY")
    with DevServer() as srv:
        with pytest.raises(EndpointError, match="environment variable GAD_TEST_KEY is not set"):
            ChatRunner(ep(srv)).run([ask("hi")])
        assert srv.requests() == []


def test_concurrency_is_bounded_and_rpm_limits_the_rate():
    with DevServer(latency=0.2) as srv:
        t0 = time.monotonic()
        ChatRunner(ep(srv, concurrency=4)).run([ask(f"q{i}") for i in range(12)])
        assert time.monotonic() - t0 >= 0.6 - 0.05       # 12 requests, 4 at a time, 0.2 s each
    with DevServer() as srv:
        t0 = time.monotonic()
        ChatRunner(ep(srv, rpm=600)).run([ask(f"q{i}") for i in range(615)])  # burst 600, then 10/s
        assert time.monotonic() - t0 >= 1.2


def test_ledger_costs_and_streaming_server(tmp_path):
    with DevServer() as srv:
        runner = ChatRunner(ep(srv, model="gpt-4o", price_prompt=2.0, price_completion=4.0))
        [res] = runner.run([ask("price me")])
        pt, ct = res["usage"]["prompt_tokens"], res["usage"]["completion_tokens"]
        assert res["cost"] == pytest.approx((pt * 2.0 + ct * 4.0) / 1e6)
        assert runner.ledger.cost == pytest.approx(res["cost"])
        # streaming through the SDK: chunks reassemble to the non-streamed answer, usage included
        import openai

        client = openai.OpenAI(base_url=srv.base_url, api_key="k")
        stream = client.chat.completions.create(model="m", messages=ask("stream me"), stream=True,
                                                stream_options={"include_usage": True})
        parts, usage = [], None
        for chunk in stream:
            if chunk.choices:
                parts.append(chunk.choices[0].delta.content or "")
            usage = chunk.usage or usage
        plain = client.chat.completions.create(model="m", messages=ask("stream me"))
        assert "".join(parts) == plain.choices[0].message.content and usage.completion_tokens > 0


def test_cache_key_depends_on_sampling_and_prompt():
    e = Endpoint(base_url="http://x/v1", model="m", api_key_env=None)
    assert cache_key(e, ask("a")) == cache_key(e, ask("a"))
    assert cache_key(e, ask("a")) != cache_key(e, ask("b"))
    assert cache_key(e, ask("a")) != cache_key(e.model_copy(update={"temperature": 0.5}), ask("a"))
    assert cache_key(e, ask("a")) != cache_key(e.model_copy(update={"model": "n"}), ask("a"))


def test_collect_writes_training_ready_jsonl_and_never_the_key(tmp_path):
    exs = [Example(f"p{i}", ask(f"question {i}")) for i in range(5)]
    with DevServer(faults=[{"match": "question 3", "fault": "400"}]) as srv:
        res = collect_api(exs, ep(srv, system_prompt="Be helpful."), tmp_path / "out.jsonl")
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in rows] == [f"p{i}" for i in range(5)] and rows[3]["status"] == "failed"
    ok = [e for e in load_examples(tmp_path / "out.jsonl") if e.response]
    assert len(ok) == 4 and ok[0].messages == ask("question 0")
    for path in (tmp_path / "out.jsonl", tmp_path / "out.jsonl.cache.jsonl"):
        assert "sk-test-secret-value" not in path.read_text()
    assert res.ledger["requests"] == 5


COLLECT_SCRIPT = """
import sys
from gad.api_client import Endpoint
from gad.data import Example
from gad.teacher import collect_api
exs = [Example(f"p{i}", [{"role": "user", "content": f"prompt number {i}"}]) for i in range(int(sys.argv[3]))]
collect_api(exs, Endpoint(base_url=sys.argv[1], model="dev", api_key_env=None, concurrency=4), sys.argv[2])
"""


def test_kill_mid_collection_then_rerun_asks_nothing_twice(tmp_path):
    n = 60
    out = tmp_path / "out.jsonl"
    with DevServer(latency=0.05) as srv:
        proc = subprocess.Popen([sys.executable, "-c", COLLECT_SCRIPT, srv.base_url, str(out), str(n)],
                                cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        cache = tmp_path / "out.jsonl.cache.jsonl"
        deadline = time.time() + 60
        while not cache.exists() or len(cache.read_text().splitlines()) < 20:
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not out.exists()                                   # never half-written
        answered_before = {json.loads(l)["record"]["response"] for l in cache.read_text().splitlines()}
        asked_before = len(srv.requests())
        subprocess.run([sys.executable, "-c", COLLECT_SCRIPT, srv.base_url, str(out), str(n)], cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, timeout=120)
        second = [r["prompt"] for r in srv.requests()[asked_before:]]
        cached_prompts = {f"prompt number {i}" for i in range(n)
                          if any(f"prompt number {i}." in a for a in answered_before)}
        assert cached_prompts and not cached_prompts & set(second)   # nothing answered is asked again
        # at most the requests in flight at the kill (concurrency 4) were lost and re-sent
        assert asked_before + len(second) <= n + 4
        assert len(read_jsonl(out)) == n and all(r["status"] == "ok" for r in read_jsonl(out))
        total = len(srv.requests())
        subprocess.run([sys.executable, "-c", COLLECT_SCRIPT, srv.base_url, str(out), str(n)], cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, timeout=120)
        assert len(srv.requests()) == total                      # an identical third run sends nothing


def test_local_teacher(tiny_model, tmp_path):
    exs = [Example(f"p{i}", ask(f"say {i}")) for i in range(3)]
    res = collect_local(exs, str(tiny_model), tmp_path / "t.jsonl", max_new_tokens=6)
    rows = read_jsonl(tmp_path / "t.jsonl")
    assert len(rows) == 3 and all(r["status"] == "ok" and r["usage"]["completion_tokens"] <= 6 for r in rows)
    assert res.ledger["ok"] == 3


def test_collect_cli_against_the_server(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"cli {i}"}) + "\n" for i in range(4)))
    with DevServer(faults=[{"match": "cli 2", "fault": "content_filter"}]) as srv:
        cmd = [sys.executable, "-m", "gad.cli", "collect", "--base-url", srv.base_url, "--model", "gpt-4o",
               "--api-key-env", "GAD_TEST_KEY", "--data", str(data), "--output", str(tmp_path / "o.jsonl"),
               "--no-progress"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert "collected 3/4 responses" in proc.stdout and "refused: id" in proc.stdout
    assert "sk-test-secret-value" not in proc.stdout + proc.stderr
