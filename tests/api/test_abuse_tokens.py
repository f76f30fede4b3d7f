"""A new password revokes the user's API tokens (a leaked token stops working with it), unless the
caller asks to keep them."""

from __future__ import annotations

import httpx

from tests.api.conftest import PASSWORD


def test_a_password_change_revokes_the_users_tokens(studio):
    from app.db.session import session_scope
    from app.services import users as svc

    with session_scope(studio.ctx.sessions) as s:
        user = svc.create_user(s, "token-owner", "researcher", PASSWORD)
        token = svc.create_token(s, user, "laptop")[1]
        kept_user = svc.create_user(s, "token-keeper", "researcher", PASSWORD)
        kept = svc.create_token(s, kept_user, "ci")[1]
    as_user = lambda t: httpx.Client(base_url=studio.url, headers={"Authorization": f"Bearer {t}"})  # noqa: E731
    with as_user(token) as c:
        assert c.get("/api/datasets").status_code == 200
    with studio.client("admin") as admin:
        r = admin.patch(f"/api/users/{user.id}", json={"password": "another long password"})
        assert r.status_code == 200, r.text
    with as_user(token) as c:
        r = c.get("/api/datasets")
        assert r.status_code == 401 and "revoked" in r.json()["message"]
    with session_scope(studio.ctx.sessions) as s:
        svc.set_password(s, svc.get_user(s, kept_user.id), "another long password", keep_tokens=True)
    with as_user(kept) as c:
        assert c.get("/api/datasets").status_code == 200
