"""No prompt is paid for twice: one shared, content-addressed cache; endpoints that cannot work stop at once.

Every count here is what the local OpenAI-compatible server really received, through the official SDK.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from app.devserver import DevServer
from gad.cli import main
from gad.data.examples import Example
from gad.llm.api_client import ENDPOINT_PARAM_FIELDS, ChatRunner, Endpoint, EndpointError
from gad.llm.cache import JsonlStore, cache_key, default_cache_path, is_answer
from gad.llm.teacher import collect_api
from tests.conftest import REPO, read_jsonl


@pytest.fixture(autouse=True)
def data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("GAD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GAD_TEST_KEY", "sk-test-secret-value")


def ep(url: str, **kw) -> Endpoint:
    return Endpoint(**{"base_url": url, "model": "dev", "api_key_env": None, "timeout": 5.0, "max_retries": 3,
                       "backoff_base": 0.01, "backoff_max": 0.5, **kw})


def examples(n: int, word: str = "question") -> list[Example]:
    return [Example(f"p{i}", [{"role": "user", "content": f"{word} {i}"}]) for i in range(n)]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nobody listens there once the socket is closed


# --- one cache, whatever the output is called ------------------------------------------------------------
def test_collecting_into_another_file_sends_nothing_again(tmp_path, capsys):
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"shared {i}"}) + "\n" for i in range(12)))
    with DevServer() as srv:
        args = ["collect", "--base-url", srv.base_url, "--model", "dev", "--api-key-env", "GAD_TEST_KEY",
                "--data", str(data), "--no-progress"]
        assert main(args + ["--output", str(tmp_path / "first.jsonl")]) == 0
        assert len(srv.requests()) == 12
        assert main(args + ["--output", str(tmp_path / "elsewhere" / "second.jsonl")]) == 0
        assert len(srv.requests()) == 12                              # 0 of 12 asked again
    out = capsys.readouterr().out
    assert "from cache 12" in out and str(default_cache_path()) in out
    assert default_cache_path().is_file() and str(tmp_path / "data") in str(default_cache_path())
    first, second = read_jsonl(tmp_path / "first.jsonl"), read_jsonl(tmp_path / "elsewhere" / "second.jsonl")
    assert [r["response"] for r in first] == [r["response"] for r in second]
    assert "sk-test-secret-value" not in default_cache_path().read_text()


def test_cache_flag_chooses_the_file(tmp_path):
    chosen = tmp_path / "mine" / "answers.jsonl"
    with DevServer() as srv:
        collect_api(examples(3), ep(srv.base_url), tmp_path / "o.jsonl", cache=chosen)
        collect_api(examples(3), ep(srv.base_url), tmp_path / "o2.jsonl", cache=chosen)
        assert len(srv.requests()) == 3
    assert chosen.is_file() and not default_cache_path().exists()


def test_answers_of_older_per_output_caches_are_not_bought_again(tmp_path):
    with DevServer() as srv:
        e = ep(srv.base_url)
        old = JsonlStore(tmp_path / "out.jsonl.cache.jsonl")  # where versions before the shared cache kept them
        for ex in examples(4):
            old.put(cache_key(e, ex.messages), {"status": "ok", "response": f"old answer to {ex.prompt_text}"})
        old.close()
        res = collect_api(examples(5), e, tmp_path / "out.jsonl")
        assert [r["prompt"] for r in srv.requests()] == ["question 4"]
    assert res.records[0]["response"] == "old answer to question 0" and res.ledger["cached"] == 4


def test_the_same_question_twice_in_one_run_is_asked_once():
    with DevServer() as srv:
        runner = ChatRunner(ep(srv.base_url))
        res = runner.run([[{"role": "user", "content": "same"}]] * 5 + [[{"role": "user", "content": "other"}]])
        assert len(srv.requests()) == 2 and runner.ledger.cached == 4
    assert len({r["response"] for r in res[:5]}) == 1 and [r["cached"] for r in res[:2]] == [False, True]


CONCURRENT = """
import sys
from gad.llm.api_client import Endpoint
from gad.data.examples import Example
from gad.llm.teacher import collect_api
exs = [Example(f"p{i}", [{"role": "user", "content": f"together {i}"}]) for i in range(24)]
collect_api(exs, Endpoint(base_url=sys.argv[1], model="dev", api_key_env=None, concurrency=4), sys.argv[2],
            cache=sys.argv[3])
"""


def test_two_collections_running_at_once_share_their_requests(tmp_path):
    cache = tmp_path / "cache.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with DevServer(latency=0.2) as srv:
        procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, srv.base_url, str(tmp_path / f"o{k}.jsonl"),
                                   str(cache)], cwd=REPO, env=env) for k in range(2)]
        assert [p.wait(timeout=120) for p in procs] == [0, 0]
        prompts = [r["prompt"] for r in srv.requests()]
    assert sorted(prompts) == sorted(f"together {i}" for i in range(24))   # each asked once, by one of the two
    assert [r["response"] for r in read_jsonl(tmp_path / "o0.jsonl")] == \
        [r["response"] for r in read_jsonl(tmp_path / "o1.jsonl")]


# --- endpoints that cannot work: stop at once, cache nothing --------------------------------------------
def test_404_wrong_base_path_stops_at_once_and_is_never_cached(tmp_path):
    store_path = tmp_path / "c.jsonl"
    with DevServer() as srv:
        wrong = srv.base_url.removesuffix("/v1") + "/api"          # the server answers 404 there
        with pytest.raises(EndpointError, match=r"answered 404 Not Found for model 'dev'.*base URL's path is wrong"):
            collect_api(examples(30), ep(wrong, concurrency=2), tmp_path / "o.jsonl", cache=store_path)
        assert len(srv.requests()) <= 2                            # those in flight, never the 30
        assert not (tmp_path / "o.jsonl").exists()
        store = JsonlStore(store_path)
        assert not [r for _, r in store.items() if is_answer(r)]  # nothing kept as a final failure
        store.close()
        asked = len(srv.requests())
        res = collect_api(examples(30), ep(srv.base_url, concurrency=2), tmp_path / "o.jsonl", cache=store_path)
        assert res.ledger["failed"] == 0 and len(srv.requests()) == asked + 30   # the fixed URL asks everything


def test_404_unknown_model_stops_the_run():
    with DevServer(faults=[{"match": "*", "fault": "404"}]) as srv:
        with pytest.raises(EndpointError, match="model 'gpt-9' does not exist"):
            ChatRunner(ep(srv.base_url, model="gpt-9", concurrency=1)).run(
                [[{"role": "user", "content": f"q{i}"}] for i in range(10)])
        assert len(srv.requests()) == 1


@pytest.mark.parametrize("concurrency", [1, 16])
def test_refused_connections_fail_fast_naming_the_url(concurrency):
    url = closed_port_url()
    t0 = time.monotonic()
    with pytest.raises(EndpointError) as info:
        ChatRunner(ep(url, concurrency=concurrency, backoff_base=1.0, backoff_max=60.0)).run(
            [[{"role": "user", "content": f"q{i}"}] for i in range(40)])
    elapsed = time.monotonic() - t0
    assert f"cannot connect to {url}" in str(info.value) and "3 attempts in a row" in str(info.value)
    assert elapsed < 5.0, elapsed                                   # not 40 prompts x retries x backoff


def test_refused_connection_through_the_cli_is_one_line(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"p {i}"}) + "\n" for i in range(40)))
    url = closed_port_url()
    rc = main(["collect", "--base-url", url, "--model", "m", "--api-key-env", "", "--data", str(data),
               "--output", str(tmp_path / "o.jsonl"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"error: cannot connect to {url}") and "Traceback" not in err


def test_a_server_that_answered_once_gets_more_patience():
    """After an answer, a few refused connections (a restart) do not stop the run; the request just fails."""
    with DevServer() as srv:
        runner = ChatRunner(ep(srv.base_url, max_retries=1))
        runner.run([[{"role": "user", "content": "warm"}]])
    # the same runner once the server has gone: per-request retries apply, the run is not stopped
    res = runner.run([[{"role": "user", "content": "after"}]])
    assert res[0]["status"] == "failed" and "gave up after 2 attempts" in res[0]["error"]


# --- a key given where its variable's name belongs ------------------------------------------------------
@pytest.mark.parametrize("value", ["sk-proj-AbC123secretvalue", "my key with spaces", "Bearer abc.def"])
def test_key_given_as_env_name_is_recognised_and_never_printed(tmp_path, capsys, value):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "hi"}) + "\n")
    with DevServer() as srv:
        rc = main(["collect", "--base-url", srv.base_url, "--model", "m", "--api-key-env", value, "--data", str(data),
                   "--output", str(tmp_path / "o.jsonl"), "--no-progress"])
        assert srv.requests() == []
    out = capsys.readouterr()
    assert rc == 2 and "looks like an API key, not the name of an environment variable" in out.err
    assert value not in out.err + out.out and "Traceback" not in out.err
    with pytest.raises(ValueError) as info:
        Endpoint(base_url="http://x/v1", model="m", api_key_env=value)
    assert value not in str(info.value)                            # nor in pydantic's own message


def test_endpoint_param_fields_come_from_the_model():
    assert "base_url" not in ENDPOINT_PARAM_FIELDS and "api_key_value" not in ENDPOINT_PARAM_FIELDS
    tunable = set(ENDPOINT_PARAM_FIELDS)
    assert {"temperature", "max_tokens", "concurrency", "rpm", "price_prompt", "backoff_max"} <= tunable
    assert tunable | {"base_url", "model", "api_key_env", "api_key_value"} == set(Endpoint.model_fields)
    assert Endpoint.tunable_fields() == ENDPOINT_PARAM_FIELDS
