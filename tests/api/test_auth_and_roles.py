"""Logins, tokens, CSRF, roles and secrets, over real HTTP."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.api.conftest import PASSWORD
from tests.conftest import REPO


def test_health_needs_no_login_and_reports_the_services(studio):
    with studio.client() as c:
        r = c.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["database"] == "ok" and body["broker"] == "ok" and body["status"] == "ok"


def test_the_openapi_schema_documents_every_route(studio):
    with studio.client() as c:
        schema = c.get("/openapi.json").json()
        assert c.get("/docs").status_code == 200
    missing = []
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            ok = {code: r for code, r in op["responses"].items() if code.startswith("2")}
            if not ok:
                missing.append(f"{method} {path}: no success response")
            for code, r in ok.items():
                if code != "204" and not r.get("content"):
                    missing.append(f"{method} {path}: {code} has no schema")
            if "422" not in op["responses"] and (op.get("parameters") or op.get("requestBody")):
                missing.append(f"{method} {path}: no 422")
    assert missing == []
    run_settings = schema["components"]["schemas"]["RunSettings"]["properties"]
    assert run_settings["lr"]["default"] == 1e-6 and "adversarial" in run_settings["lr"]["description"]


def test_login_sets_an_httponly_cookie_and_csrf_guards_writes(studio):
    with studio.client() as c:
        r = c.post("/api/auth/login", json={"username": "researcher", "password": PASSWORD})
        assert r.status_code == 200, r.text
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        csrf = r.json()["csrf_token"]
        assert c.get("/api/auth/me").json()["name"] == "researcher"
        denied = c.post("/api/auth/tokens", json={"name": "x"})
        assert denied.status_code == 403 and "CSRF" in denied.json()["message"]
        made = c.post("/api/auth/tokens", json={"name": "x"}, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201 and made.json()["token"].startswith("gad_")
        listed = c.get("/api/auth/tokens").json()
        mine = [t for t in listed if t["id"] == made.json()["id"]]
        assert len(mine) == 1 and mine[0]["name"] == "x", listed    # listed (so the next check is not vacuous)
        assert all(t["token"] is None for t in listed)              # shown once, never again
        c.post("/api/auth/logout")
        assert c.get("/api/auth/me").status_code == 401


def test_a_wrong_password_says_nothing_more_and_repeated_failures_slow_down(studio):
    from app.db.session import session_scope
    from app.services.users import create_user

    with session_scope(studio.ctx.sessions) as s:
        create_user(s, "victim", "researcher", PASSWORD)
    with studio.client() as c:
        codes = [c.post("/api/auth/login", json={"username": "victim", "password": "nope-nope"}) for _ in range(4)]
        assert [r.status_code for r in codes[:3]] == [401, 401, 401]
        assert codes[0].json()["message"] == "wrong user name or password"
        locked = c.post("/api/auth/login", json={"username": "victim", "password": PASSWORD})
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
        assert c.post("/api/auth/login", json={"username": "nobody", "password": "x" * 8}).status_code == 401


def test_bearer_tokens_authenticate_and_can_be_revoked(studio):
    with studio.client("researcher") as c:
        token = c.post("/api/auth/tokens", json={"name": "script"}).json()
    with studio.client() as c:
        headers = {"Authorization": f"Bearer {token['token']}"}
        assert c.get("/api/runs", headers=headers).status_code == 200
        assert c.get("/api/runs", headers={"Authorization": "Bearer gad_not-a-token"}).status_code == 401
        assert c.delete(f"/api/auth/tokens/{token['id']}", headers=headers).status_code == 204
        assert c.get("/api/runs", headers=headers).status_code == 401


ROUTES = [("GET", "/api/runs"), ("GET", "/api/datasets"), ("GET", "/api/endpoints"), ("GET", "/api/jobs"),
          ("GET", "/api/studies"), ("GET", "/api/evaluations"), ("GET", "/v1/models"), ("GET", "/api/users")]


@pytest.mark.parametrize("method,path", ROUTES)
def test_roles_see_only_what_they_may(studio, method, path):
    expected = {"admin": 200, "researcher": 403 if path == "/api/users" else 200, "annotator": 403}
    for role, code in expected.items():
        with studio.client(role) as c:
            assert c.request(method, path).status_code == code, (role, path)
    with studio.client() as c:
        assert c.request(method, path).status_code == 401


def test_annotators_and_researchers_cannot_launch_or_administer(studio):
    with studio.client("annotator") as c:
        assert c.post("/api/runs", json={"config": {"student": "org/m"}}).status_code == 403
        assert c.post("/api/jobs/collect", json={"dataset_id": 1, "endpoint_id": 1}).status_code == 403
        assert c.get("/api/annotate").status_code == 200
    with studio.client("researcher") as c:
        r = c.post("/api/endpoints", json={"name": "e", "base_url": "http://127.0.0.1:9/v1", "model": "m"})
        assert r.status_code == 403 and "endpoints write" in r.json()["message"]
        assert c.post("/api/users", json={"name": "z", "role": "admin", "password": PASSWORD}).status_code == 403


def test_nobody_can_read_an_api_key_back(studio):
    secret = "sk-proj-THIS-IS-SECRET-123456"
    with studio.client("admin") as c:
        made = c.post("/api/endpoints", json={"name": "openai-x", "base_url": "https://api.openai.com/v1",
                                              "model": "gpt-4o", "api_key": secret, "params": {"temperature": 0.2}})
        assert made.status_code == 201, made.text
        bodies = [made.text, c.get("/api/endpoints").text, c.get(f"/api/endpoints/{made.json()['id']}").text,
                  c.get("/openapi.json").text]
        pasted = c.post("/api/endpoints", json={"name": "oops", "base_url": "https://api.openai.com/v1",
                                                "model": "gpt-4o", "key_env_var": secret})
        bodies.append(pasted.text)
        assert pasted.status_code == 422
    assert len(bodies) == 5 and "openai-x" in bodies[1]           # real listings, not empty or error pages
    assert all(secret not in b for b in bodies)
    assert made.json()["key"] == "stored (encrypted)"
    from sqlalchemy import text

    with studio.ctx.engine.connect() as conn:
        raw = conn.execute(text("SELECT key_encrypted FROM endpoints WHERE name = 'openai-x'")).scalar()
    assert secret.encode() not in bytes(raw)


def test_users_cli_prints_a_token_alone_on_the_last_line(studio):
    env = {**studio.env, "GAD_ADMIN_PASSWORD": PASSWORD}
    run = lambda *a: subprocess.run([sys.executable, "-m", "app.cli", "users", *a], env=env, cwd=REPO,  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    made = run("create", "scripted", "--role", "researcher")
    assert made.returncode == 0, made.stderr
    again = run("create", "scripted", "--role", "researcher")
    assert again.returncode == 4 and "exists already" in again.stderr and "Traceback" not in again.stderr
    token = run("token", "scripted").stdout.strip().splitlines()[-1]
    assert token.startswith("gad_")
    with studio.client() as c:
        assert c.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).json()["name"] == "scripted"
    no_password = subprocess.run([sys.executable, "-m", "app.cli", "users", "create", "x2", "--role", "admin"],
                                 env={k: v for k, v in studio.env.items() if k != "GAD_ADMIN_PASSWORD"}, cwd=REPO,
                                 capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert no_password.returncode == 2 and "GAD_ADMIN_PASSWORD" in no_password.stderr
