"""A run's whole life through the API with a real worker: launched from an uploaded dataset, watched
over Server-Sent Events (and resumed with Last-Event-ID), its curves, rollouts, log and checkpoints
read back, then chatted with through the official openai SDK, streamed and not."""

from __future__ import annotations

import json

import httpx
import pytest

from gad.data.resources import DATASET_DIR
from tests.api.conftest import wait_for

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
        data = (DATASET_DIR / "teacher_alpaca_gpt4_demo_999.jsonl").read_bytes().splitlines(True)[:16]
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
        assert set(m["series"]) == {"disc_loss", "kl"} and len(m["series"]["disc_loss"]["step"]) <= 3
        assert m["bucket_steps"] >= 2 and m["series"]["kl"]["step"][0] >= 3            # KL starts with GRPO
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


def _wait_job(c, job_id: int) -> dict:
    return wait_for(lambda: (j := c.get(f"/api/jobs/{job_id}").json())["status"] in ("succeeded", "failed") and j,
                    what=f"job {job_id}")


def test_a_blind_study_between_two_checkpoints(live_studio, finished_run):
    run, _ = finished_run
    with live_studio.client("researcher") as c:
        ckpts = {k["step"]: k["id"] for k in c.get(f"/api/runs/{run['id']}").json()["checkpoints"]}
        ds = c.get("/api/datasets").json()[0]
        made = c.post("/api/studies", json={"name": "early vs late", "dataset_id": ds["id"], "n_items": 3,
                                            "annotators_per_item": 2, "guidelines": "Prefer the more helpful answer.",
                                            "max_new_tokens": 6,
                                            "model_a": {"checkpoint_id": ckpts[2], "label": "step 2"},
                                            "model_b": {"checkpoint_id": ckpts[6], "label": "step 6"}})
        assert made.status_code == 202, made.text
        study_id = made.json()["study"]["id"]
        assert _wait_job(c, made.json()["job_id"])["status"] == "succeeded"
        study = c.get(f"/api/studies/{study_id}").json()
        if study["status"] == "review":      # a tiny random model may by chance write a vendor name
            c.post(f"/api/studies/{study_id}/review", json={"drop": False})
        assert c.get(f"/api/studies/{study_id}").json()["status"] == "open"
    with live_studio.client("annotator") as a:
        assert [s["id"] for s in a.get("/api/annotate").json()] == [study_id]
        first = a.get(f"/api/annotate/{study_id}/next").json()
        assert set(first) == {"item_id", "study_id", "prompt", "left", "right", "progress", "guidelines"}
        blob = json.dumps(first)
        assert "step 2" not in blob and "step 6" not in blob and "run-" not in blob   # nothing names a model
        assert a.get(f"/api/studies/{study_id}").status_code == 403                 # nor any other page
        vote = {"item_id": first["item_id"], "side": "left"}
        assert a.post(f"/api/annotate/{study_id}/votes", json=vote).status_code == 200
        undone = a.post(f"/api/annotate/{study_id}/undo").json()
        assert undone["item_id"] == first["item_id"] and undone["progress"]["done"] == 0
        seen = []
        while (r := a.get(f"/api/annotate/{study_id}/next")).status_code == 200:
            item = r.json()
            seen.append(item["item_id"])
            side = "skip" if len(seen) == 3 else ("both_bad" if len(seen) == 2 else "left")
            a.post(f"/api/annotate/{study_id}/votes", json={"item_id": item["item_id"], "side": side})
        assert r.status_code == 204 and len(seen) == 3 == len(set(seen))
        bad = a.post(f"/api/annotate/{study_id}/votes", json={"item_id": seen[0], "side": "middle"})
        assert bad.status_code == 422 and bad.json()["field"] == "side"
    with live_studio.client("researcher") as c:
        res = c.get(f"/api/studies/{study_id}/results").json()
        assert res["votes"] == 2 and res["skipped"] == 1 and res["both_bad"] == 1 and res["tie"] == 1
        assert res["win_ci"][0] <= res["win_rate"] <= res["win_ci"][1]
        assert res["annotators"] == [{"annotator": "annotator", "win": res["win"], "tie": 1, "loss": res["loss"],
                                      "skipped": 1}]
        csv_text = c.get(f"/api/studies/{study_id}/export", params={"format": "csv"}).text
        assert csv_text.count("\n") == 4 and "step 6" in csv_text        # researchers see the models


def test_an_evaluation_against_a_local_judge(live_studio, finished_run):
    from app.devserver import DevServer

    run, _ = finished_run
    with DevServer() as judge:
        with live_studio.client("admin") as admin:
            ep = admin.post("/api/endpoints", json={"name": "judge", "base_url": judge.base_url, "model": "judge-1",
                                                    "api_key": "local-key"}).json()
            tested = admin.post(f"/api/endpoints/{ep['id']}/test").json()
            assert tested["ok"] and tested["latency_ms"] > 0
        with live_studio.client("researcher") as c:
            ck = c.get(f"/api/runs/{run['id']}").json()["checkpoints"][-1]
            job = c.post("/api/evaluations", json={"models": [{"name": "late", "checkpoint_id": ck["id"]}],
                                                   "sets": ["vicuna"], "judge_endpoint_id": ep["id"], "limit": 2,
                                                   "max_new_tokens": 6})
            assert job.status_code == 202, job.text
            done = _wait_job(c, job.json()["id"])
            assert done["status"] == "succeeded", done["error"]
            rows = c.get("/api/evaluations", params={"job_id": done["id"]}).json()
            assert [(r["model"], r["set"], r["checkpoint_id"]) for r in rows] == [("late", "vicuna", ck["id"])]
            assert rows[0]["score"] is not None and rows[0]["ci_low"] <= rows[0]["score"] <= rows[0]["ci_high"]
            per = c.get(f"/api/evaluations/{rows[0]['id']}/samples").json()
            assert len(per) == 2 and all(s["model_score"] is not None for s in per)
            wrong = c.post("/api/evaluations", json={"models": [{"name": "x", "checkpoint_id": 999}],
                                                     "sets": ["vicuna"], "judge_endpoint_id": ep["id"]})
            assert wrong.status_code == 404 and "checkpoint" in wrong.json()["message"]
