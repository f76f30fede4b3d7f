"""Teacher collection against a real local OpenAI-compatible server, through the official SDK."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from app.devserver import DevServer
from gad.data.examples import Example, load_examples
from gad.llm.api_client import ChatRunner, Endpoint, EndpointError
from gad.llm.cache import JsonlStore, cache_key, default_cache_path, is_answer
from gad.llm.teacher import collect_api, collect_local
from tests.conftest import REPO, read_jsonl


def ep(server, **kw) -> Endpoint:
    base = dict(base_url=server.base_url, model="dev", api_key_env="GAD_TEST_KEY", timeout=1.0, max_retries=3,
                backoff_base=0.01, backoff_max=2.0)
    return Endpoint(**{**base, **kw})


@pytest.fixture(autouse=True)
def test_key(monkeypatch, tmp_path):
    monkeypatch.setenv("GAD_TEST_KEY", "sk-test-secret-value")
    monkeypatch.setenv("GAD_DATA_DIR", str(tmp_path / "data"))  # the shared cache lives in the test's folder


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
        assert not is_answer(store.get(cache_key(ep(srv, max_retries=2), ask("down again"))))
        ChatRunner(ep(srv, max_retries=0), store).run([ask("down again"), ask("fine")])
        assert [r["prompt"] for r in srv.requests()[4:]] == ["down again"]  # retried next run, "fine" is not


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
    for path in (tmp_path / "out.jsonl", default_cache_path()):
        assert "sk-test-secret-value" not in path.read_text()
    assert res.ledger["requests"] == 5


COLLECT_SCRIPT = """
import json, sys
from gad.llm.api_client import Endpoint
from gad.data.examples import Example
from gad.llm.teacher import collect_api
exs = [Example(f"p{i}", [{"role": "user", "content": f"prompt number {i}"}]) for i in range(int(sys.argv[3]))]
res = collect_api(exs, Endpoint(base_url=sys.argv[1], model="dev", api_key_env=None, concurrency=4), sys.argv[2],
                  cache=sys.argv[4])
print(json.dumps(res.ledger))
"""


def _journal(path) -> dict[str, dict]:
    store = JsonlStore(path)
    try:
        return dict(store.items())
    finally:
        store.close()


def test_kill_mid_collection_then_rerun_asks_nothing_twice_and_counts_requests_in_flight(tmp_path):
    n = 60
    out, cache = tmp_path / "out.jsonl", tmp_path / "cache.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with DevServer(latency=0.3) as srv:
        cmd = [sys.executable, "-c", COLLECT_SCRIPT, srv.base_url, str(out), str(n), str(cache)]
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
        deadline = time.time() + 60
        while sum(r["status"] == "ok" for r in _journal(cache).values()) < 12 if cache.exists() else True:
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not out.exists()                                   # never half-written
        received = len(srv.requests())
        journal = _journal(cache)
        answered = [r["response"] for r in journal.values() if r["status"] == "ok"]
        in_flight = [r for r in journal.values() if r["status"] == "pending"]
        # every request the server received was journalled before it was sent: answered, or pending
        assert in_flight and len(answered) <= received <= len(answered) + len(in_flight)
        second_run = subprocess.run(cmd, cwd=REPO, env=env, check=True, timeout=120, capture_output=True, text=True)
        ledger = json.loads(second_run.stdout)
        assert ledger["lost_earlier"] == len(in_flight)            # the killed run's in-flight requests are counted
        second = [r["prompt"] for r in srv.requests()[received:]]
        answered_prompts = {f"prompt number {i}" for i in range(n) if any(f"prompt number {i}." in a for a in answered)}
        assert len(answered_prompts) == len(answered) and not answered_prompts & set(second)  # none asked twice
        assert len(second) == n - len(answered) == ledger["requests"]
        assert len(read_jsonl(out)) == n and all(r["status"] == "ok" for r in read_jsonl(out))
        assert not [r for r in _journal(cache).values() if r["status"] != "ok"]  # nothing left pending
        total = len(srv.requests())
        subprocess.run(cmd, cwd=REPO, env=env, check=True, timeout=120, capture_output=True)
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
