"""What a careful reviewer tried against the server: copied cookies after logout or a new password,
oversized anonymous bodies, deleting rows still in use, a broker that is down, hostile inputs that
once gave 500s, and what an annotator can learn from a study's name."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from tests.api.conftest import PASSWORD, make_studio


def _login(studio, name):
    c = studio.client()
    r = c.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return c, r.json()["csrf_token"]


def test_logging_out_ends_copied_cookies_and_a_new_password_ends_every_session(studio):
    from app.db.session import session_scope
    from app.services.users import create_user, set_password, user_by_name

    with session_scope(studio.ctx.sessions) as s:
        create_user(s, "mallory-target", "researcher", PASSWORD)
    browser, _ = _login(studio, "mallory-target")
    stolen = httpx.Client(base_url=studio.url, cookies=dict(browser.cookies))
    assert stolen.get("/api/auth/me").status_code == 200
    browser.post("/api/auth/logout")
    assert stolen.get("/api/auth/me").status_code == 401            # the copy died with the original
    again, _ = _login(studio, "mallory-target")
    with session_scope(studio.ctx.sessions) as s:
        set_password(s, user_by_name(s, "mallory-target"), "a brand new password")
    assert again.get("/api/auth/me").status_code == 401


def test_an_anonymous_oversized_body_is_refused_before_it_is_read(studio):
    with studio.client() as c:
        r = c.post("/api/datasets", content=b"x" * 200_000,
                   headers={"Content-Type": "multipart/form-data; boundary=zz"})
        assert r.status_code == 413 and r.json()["field"] == "body"
        r = c.post("/api/auth/login", content=b'{"username": "' + b"a" * 5_000_000 + b'"}',
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 413

        def chunks():  # no Content-Length: counted as it streams
            for _ in range(100):
                yield b"y" * 100_000

        r = c.post("/api/auth/login", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413


def test_deleting_a_dataset_a_study_uses_is_a_conflict(studio):
    from app.db.models import Study
    from app.db.session import session_scope

    with studio.client("researcher") as c:
        ds = c.post("/api/datasets", files={"file": ("s.jsonl", b'{"prompt": "p"}\n')}).json()
        with session_scope(studio.ctx.sessions) as s:
            s.add(Study(name="uses it", model_a="{}", model_b="{}", dataset_id=ds["id"]))
        r = c.delete(f"/api/datasets/{ds['id']}")
        assert r.status_code == 409 and "human-evaluation" in r.json()["message"]


@pytest.mark.parametrize("payload,field", [
    ({"name": "e1", "base_url": "http://127.0.0.1:9/v1", "model": "m", "params": {"model": "x"}}, "params"),
    ({"name": "e2", "base_url": "http://127.0.0.1:9/v1", "model": "m", "params": {"temperature": -1}}, None),
])
def test_endpoint_parameters_are_checked_not_crashed_on(studio, payload, field):
    with studio.client("admin") as c:
        r = c.post("/api/endpoints", json=payload)
    assert r.status_code == 422, r.text
    if field:
        assert r.json()["field"].startswith(field)


def test_hostile_paths_and_ids_are_input_errors(studio):
    with studio.client("researcher") as c:
        for data in ("bad\x00path.jsonl", "~nosuchuser_zz/x.jsonl"):
            r = c.post("/api/runs", json={"config": {"student": "org/m", "data": data}})
            assert r.status_code == 422 and r.json()["field"] == "data", r.text
        r = c.post("/api/evaluations", json={"models": [{"name": "m", "path": "org/m"}], "sets": ["dataset:²"],
                                             "judge_endpoint_id": 1})
        assert r.status_code in (404, 422)
        r = c.get("/api/runs/1/events", headers={"Last-Event-ID": "9" * 30})
        assert r.status_code in (404, 422)


def test_a_broker_that_is_down_leaves_the_run_saved_and_sent_later(tmp_path):
    from app.db.models import Run
    from app.services.sending import unsent
    from tests.api.conftest import ServerThread, free_port

    app, ctx, _, tokens = make_studio(tmp_path, broker="redis://127.0.0.1:1/0")    # nothing listens there
    pairs = tmp_path / "p.jsonl"
    pairs.write_text('{"prompt": "q", "response": "a"}\n')
    auth = {"Authorization": f"Bearer {tokens['researcher']}"}
    with ServerThread(app, free_port()) as srv, httpx.Client(base_url=srv.url, timeout=60, headers=auth) as c:
        r = c.post("/api/runs", json={"config": {"student": "org/model", "data": str(pairs)}})
        assert r.status_code == 503 and "will be sent" in r.json()["message"]
    with ctx.sessions() as s:
        run = s.scalar(select(Run))
        assert run.status == "queued" and run.sent_at is None
        assert unsent(s, older_than=0) == [("train", run.id)]       # what the workers' sweeper sends
    ctx.close()


def test_annotators_see_neutral_study_titles_and_closed_studies_are_final(studio):
    from app.db.models import Study, StudyItem, User, Vote
    from app.db.session import session_scope
    from app.services.studies import set_status
    from app.services.study_queue import cast_vote

    with session_scope(studio.ctx.sessions) as s:
        study = Study(name="Qwen-GAD vs GPT-4o", model_a='{"label": "a"}', model_b='{"label": "b"}', status="open")
        s.add(study)
        s.flush()
        item = StudyItem(study_id=study.id, position=0, prompt="p", response_a="x", response_b="y", a_on_left=True)
        s.add(item)
        s.flush()
        annotator = s.scalar(select(User).where(User.name == "annotator"))
        study_id, item_id, annotator_id = study.id, item.id, annotator.id
    with studio.client("annotator") as c:
        listed = c.get("/api/annotate").json()
        assert [x["name"] for x in listed if x["id"] == study_id] == [f"Study {study_id}"]
        assert "GPT" not in c.get("/api/annotate").text
    with session_scope(studio.ctx.sessions) as s:
        cast_vote(s, item_id, annotator_id, "left")
        set_status(s, study_id, "closed")
    with studio.client("annotator") as c:
        r = c.post(f"/api/annotate/{study_id}/undo")
        assert r.status_code == 409 and "final" in r.json()["message"]
    with studio.ctx.sessions() as s:
        assert s.scalar(select(Vote).where(Vote.item_id == item_id)) is not None
