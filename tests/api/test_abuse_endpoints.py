"""Secrets in endpoint settings: credentials in a base URL never come back (API, admin table, logs,
error messages) nor sit in the database in plain text; an endpoint's key may be read only from an
allowed environment variable; link-local (cloud metadata) addresses are refused by default."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from app.devserver import DevServer
from app.errors import InvalidInput
from app.settings import Settings

PASSWORD_IN_URL = "hunter2-s3cret@pw"


@pytest.fixture(scope="module")
def devserver():
    with DevServer() as server:
        yield server


def _with_credentials(url: str) -> str:
    return url.replace("http://", f"http://alice:{PASSWORD_IN_URL}@")


def test_credentials_in_a_base_url_are_masked_everywhere(studio, devserver, caplog):
    from app.services.endpoints import list_endpoints, public_view

    caplog.set_level(logging.DEBUG)
    url = _with_credentials(devserver.base_url)
    with studio.client("admin") as c:
        made = c.post("/api/endpoints", json={"name": "with-creds", "base_url": url, "model": "teacher-dev"})
        assert made.status_code == 201, made.text
        ep_id = made.json()["id"]
        tested = c.post(f"/api/endpoints/{ep_id}/test")
        dead = c.post("/api/endpoints", json={"name": "with-creds-dead", "model": "m",
                                              "base_url": _with_credentials("http://127.0.0.1:9/v1")})
        dead_test = c.post(f"/api/endpoints/{dead.json()['id']}/test")
        bodies = [made.text, c.get("/api/endpoints").text, c.get(f"/api/endpoints/{ep_id}").text, tested.text,
                  dead_test.text]
    assert tested.json()["ok"] is True, tested.text                  # the credentials still reach the server
    assert dead_test.json()["ok"] is False
    assert made.json()["base_url"] == devserver.base_url.replace("http://", "http://***@")
    with studio.ctx.sessions() as s:
        admin_table = str([public_view(r) for r in list_endpoints(s)])   # what the admin page's table shows
    with studio.ctx.engine.connect() as conn:
        stored = " ".join(r[0] for r in conn.execute(text("SELECT base_url FROM endpoints")))
    for where, seen in [("API", " ".join(bodies)), ("admin table", admin_table), ("database", stored),
                        ("logs", caplog.text)]:
        assert PASSWORD_IN_URL not in seen and "hunter2" not in seen, where


def test_a_key_env_var_must_be_on_the_allow_list(studio):
    with studio.client("admin") as c:
        refused = ["GAD_SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "HOME", "AWS_SECRET_ACCESS_KEY"]
        for i, name in enumerate(refused):
            r = c.post("/api/endpoints", json={"name": f"env-{i}", "base_url": "http://127.0.0.1:9/v1", "model": "m",
                                               "key_env_var": name})
            assert r.status_code == 422 and r.json()["field"] == "key_env_var", (name, r.text)
            assert "GAD_ENDPOINT_KEY_ENVS" in r.json()["message"]
        r = c.post("/api/endpoints", json={"name": "env-ok", "base_url": "http://127.0.0.1:9/v1", "model": "m",
                                           "key_env_var": "TEACHER_API_KEY"})
        assert r.status_code == 201, r.text


def test_the_studios_own_secrets_stay_refused_whatever_the_allow_list(studio):
    from app.services.endpoints import check_key_env

    anything = Settings(GAD_ENDPOINT_KEY_ENVS="*")
    check_key_env("LOCAL_KEY", anything)
    for name in ("GAD_SECRET_KEY", "DATABASE_URL", "gad_secret_key"):
        with pytest.raises(InvalidInput, match="never from the studio's own settings"):
            check_key_env(name, anything)


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/v1", "http://[fe80::1]:8000/v1",
                                 "http://2852039166/v1", "http://[::ffff:169.254.169.254]/v1"])
def test_link_local_addresses_are_refused_by_default(studio, url):
    with studio.client("admin") as c:
        r = c.post("/api/endpoints", json={"name": "metadata", "base_url": url, "model": "m"})
    assert r.status_code == 422, r.text
    assert "link-local" in r.json()["message"] and "GAD_ENDPOINT_ALLOW_LINK_LOCAL" in r.json()["message"]


def test_the_connection_test_refuses_a_stored_link_local_endpoint(studio):
    # A row saved before the check (or while GAD_ENDPOINT_ALLOW_LINK_LOCAL was on) is refused at use.
    from app.db.models import Endpoint as Row

    with studio.ctx.sessions() as s:
        row = Row(name="old-metadata", base_url="http://169.254.169.254/v1", model="m", params={})
        s.add(row)
        s.commit()
        ep_id = row.id
    with studio.client("researcher") as c:
        r = c.post(f"/api/endpoints/{ep_id}/test")
    assert r.status_code == 200 and r.json()["ok"] is False
    assert "link-local" in r.json()["error"]


def test_an_admin_may_allow_link_local_addresses():
    from app.services.endpoints import check_destination

    check_destination("http://169.254.169.254/v1", Settings(GAD_ENDPOINT_ALLOW_LINK_LOCAL=True))
    with pytest.raises(InvalidInput):
        check_destination("http://169.254.169.254/v1", Settings())
