"""A run's whole life through the API with a real worker: launched from an uploaded dataset, watched
over Server-Sent Events (and resumed with Last-Event-ID), its curves, rollouts, log and checkpoints
read back, then chatted with through the official openai SDK, streamed and not."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.api.conftest import wait_for
from tests.conftest import REPO

pytestmark = pytest.mark.slow

SETTINGS = {"method": "gad", "warmup_steps": 2, "steps": 4, "batch_size": 2, "group_size": 2, "max_new_tokens": 8,
            "save_steps": 2, "disc_only_steps": 1, "max_prompt_length": 48, "sample_every": 1, "lr": 1e-3,
            "warmup_lr": 1e-3, "disc_lr": 1e-3}


def sse_events(client: httpx.Client, path: str, last_event_id: int | None = None) -> list[dict]:
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    events, current = [], {}
    with client.stream("GET", path, headers=headers, params={"poll": 0.2}, timeout=300) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if not line:
                if current:
                    events.append(current)
                    if current.get("event") == "end":
                        break
                current = {}
                continue
            key, _, value = line.partition(": ")
            current[key] = value
    return events


@pytest.fixture(scope="module")
def finished_run(live_studio, tiny_model):
    with live_studio.client("researcher") as c:
        data = (REPO / "gad" / "datasets" / "teacher_alpaca_gpt4_demo_999.jsonl").read_bytes().splitlines(True)[:16]
        ds = c.post("/api/datasets", files={"file": ("alpaca.jsonl", b"".join(data))}).json()
        r = c.post("/api/runs", json={"name": "api run", "dataset_id": ds["id"],
                                      "config": {**SETTINGS, "student": str(tiny_model)}})
        assert r.status_code == 201, r.text
        run = r.json()
        events = sse_events(c, f"/api/runs/{run['id']}/events")
    return run, events


def test_the_stream_delivers_every_step_once_then_the_end(finished_run):
    run, events = finished_run
    steps = [int(e["id"]) for e in events if e.get("event") == "metrics"]
    assert steps == list(range(1, 7))                       # 2 warmup + 4 adversarial steps, in order, once
    metrics = [json.loads(e["data"]) for e in events if e.get("event") == "metrics"]
    assert "disc_loss" in metrics[0]["metrics"] and "reward_mean" in metrics[-1]["metrics"]
    statuses = [json.loads(e["data"])["status"] for e in events if e.get("event") == "status"]
    assert statuses[-1] == "succeeded" and events[-1]["event"] == "end"


def test_a_reconnecting_client_gets_only_what_it_missed(live_studio, finished_run):
    run, _ = finished_run
    with live_studio.client("researcher") as c:
        again = sse_events(c, f"/api/runs/{run['id']}/events", last_event_id=3)
    assert [int(e["id"]) for e in again if e.get("event") == "metrics"] == [4, 5, 6]


def test_curves_rollouts_log_and_checkpoints_read_back(live_studio, finished_run):
    run, _ = finished_run
    with live_studio.client("researcher") as c:
        detail = c.get(f"/api/runs/{run['id']}").json()
        assert detail["status"] == "succeeded" and detail["step"] == 6 and detail["progress"] == 1.0
        assert detail["eta_seconds"] is None and detail["stage"] == "adversarial"
        assert [k["step"] for k in detail["checkpoints"]] == [2, 4, 6]
        assert detail["checkpoints"][-1]["model_id"] == f"run-{run['id']}/step-6"
        m = c.get(f"/api/runs/{run['id']}/metrics", params={"names": "disc_loss,kl", "max_points": 3}).json()
        assert set(m["series"]) == {"disc_loss", "kl"} and len(m["series"]["disc_loss"]) <= 3
        assert [s["stage"] for s in m["stages"]] == ["warmup", "adversarial"]
        samples = c.get(f"/api/runs/{run['id']}/samples").json()
        assert samples["steps"] and samples["samples"] and "prompt" in json.dumps(samples["samples"][0])
        log = c.get(f"/api/runs/{run['id']}/log").json()["lines"]
        assert any("checkpoint step 6" in line for line in log) and any("succeeded" in line for line in log)
        listed = c.get("/api/runs", params={"status": "succeeded", "q": "api"}).json()
        assert listed["total"] == 1 and listed["items"][0]["id"] == run["id"]
        assert c.get("/api/runs", params={"status": "exploded"}).status_code == 422
        again = c.post(f"/api/runs/{run['id']}/cancel")
        assert again.status_code == 409 and "already succeeded" in again.json()["message"]


def test_chat_with_the_checkpoint_through_the_openai_sdk(live_studio, finished_run):
    import openai

    run, _ = finished_run
    client = openai.OpenAI(base_url=f"{live_studio.url}/v1", api_key=live_studio.tokens["researcher"])
    ids = [m.id for m in client.models.list().data]
    model = f"run-{run['id']}/step-6"
    assert model in ids and f"run-{run['id']}/step-2" in ids
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello"}],
                                           max_tokens=6, temperature=0.7, seed=1)
    assert reply.choices[0].finish_reason in ("stop", "length") and reply.usage.completion_tokens <= 6
    pieces = list(client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello"}],
                                                 max_tokens=6, temperature=0.7, seed=1, stream=True))
    text = "".join(p.choices[0].delta.content or "" for p in pieces if p.choices)
    assert text == reply.choices[0].message.content          # same seed, same answer, streamed or not
    assert pieces[-1].choices[0].finish_reason == reply.choices[0].finish_reason
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="run-999/step-1", messages=[{"role": "user", "content": "x"}])
    bad = openai.OpenAI(base_url=f"{live_studio.url}/v1", api_key="gad_wrong")
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    annotator = openai.OpenAI(base_url=f"{live_studio.url}/v1", api_key=live_studio.tokens["annotator"])
    with pytest.raises(openai.PermissionDeniedError):
        annotator.models.list()
