"""Logging in and out (browser: a signed HttpOnly cookie + CSRF token), who am I, my API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from app.api.deps import DB, Ctx, CurrentUser, IdPath
from app.api.schemas import ERRORS, LoginIn, LoginOut, TokenCreate, TokenOut, UserOut
from app.auth.tokens import expired_session_cookie, is_secure, make_session, session_cookie, session_of
from app.errors import StudioError
from app.services import users as user_service

router = APIRouter(tags=["auth"], responses=ERRORS)


def _set_cookie(response: Response, request: Request, value: str, setting: str) -> None:
    response.set_cookie(**session_cookie(value, is_secure(setting, request.url.scheme)))


def _drop_cookie(response: Response, request: Request, setting: str) -> None:
    response.delete_cookie(**expired_session_cookie(is_secure(setting, request.url.scheme)))


def _address(request: Request) -> str | None:
    # The peer address. Behind a proxy, run uvicorn with --proxy-headers (and --forwarded-allow-ips) so
    # this is the client's, not the proxy's.
    return request.client.host if request.client else None


@router.post("/api/auth/login", response_model=LoginOut, summary="Log in; sets the session cookie")
def login(body: LoginIn, request: Request, response: Response, session: DB, ctx: Ctx) -> LoginOut:
    try:
        user = user_service.authenticate(session, body.username, body.password, address=_address(request))
    finally:
        session.commit()  # failed attempts count, whatever happens next
    cookie, csrf = make_session(ctx.settings.fernet_key(), user.id, user.session_epoch)
    _set_cookie(response, request, cookie, ctx.settings.cookie_secure)
    return LoginOut(user=UserOut.model_validate(user), csrf_token=csrf)


def _end_sessions(request: Request, session, ctx) -> None:
    """Logging out ends every session of the user (a copied cookie dies with the one in the browser)."""
    data = session_of(ctx.settings.fernet_key(), request.cookies)
    if data is not None:
        user_service.end_sessions(session, data["uid"], data.get("epoch", 0))
        session.commit()


@router.post("/api/auth/logout", status_code=204, summary="Log out: ends this user's browser sessions")
def logout(request: Request, session: DB, ctx: Ctx) -> Response:
    _end_sessions(request, session, ctx)
    response = Response(status_code=204)
    _drop_cookie(response, request, ctx.settings.cookie_secure)
    return response


@router.get("/api/auth/me", response_model=UserOut, summary="The user this request speaks for")
def me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


@router.get("/api/auth/csrf", summary="The CSRF token of the current cookie session")
def csrf(request: Request, ctx: Ctx, user: CurrentUser) -> dict[str, str | None]:
    data = session_of(ctx.settings.fernet_key(), request.cookies) or {}
    return {"csrf_token": data.get("csrf")}


@router.get("/api/auth/tokens", response_model=list[TokenOut], summary="My API tokens (never the tokens themselves)")
def list_tokens(user: CurrentUser, session: DB) -> list[TokenOut]:
    return [TokenOut(id=t.id, name=t.name, prefix=t.prefix, created_at=t.created_at, last_used_at=t.last_used_at)
            for t in user_service.list_tokens(session, user)]


@router.post("/api/auth/tokens", response_model=TokenOut, status_code=201, summary="New API token, shown once")
def create_token(body: TokenCreate, user: CurrentUser, session: DB) -> TokenOut:
    row, token = user_service.create_token(session, user, body.name)
    session.commit()
    return TokenOut(id=row.id, name=row.name, prefix=row.prefix, created_at=row.created_at, token=token)


@router.delete("/api/auth/tokens/{token_id}", status_code=204, summary="Revoke one of my tokens")
def revoke_token(token_id: IdPath, user: CurrentUser, session: DB) -> Response:
    user_service.revoke_token(session, user, token_id)
    session.commit()
    return Response(status_code=204)


# --- the browser's login page (plain HTML: it must work before any script loads) -------------
LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>GAD Studio · log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;background:#f5f6f8;display:flex;align-items:center;justify-content:center;
height:100vh;margin:0}}form{{background:#fff;padding:2rem 2.2rem;border-radius:12px;box-shadow:0 2px 14px #0001;
width:320px}}h1{{font-size:1.3rem;margin:0 0 .3rem}}p{{color:#667;margin:0 0 1.2rem;font-size:.9rem}}
label{{display:block;font-size:.85rem;margin:.8rem 0 .25rem;color:#334}}input{{width:100%;box-sizing:border-box;
padding:.55rem .6rem;border:1px solid #ccd;border-radius:6px;font-size:1rem}}button{{margin-top:1.3rem;width:100%;
padding:.65rem;border:0;border-radius:6px;background:#ea580c;color:#fff;font-size:1rem;cursor:pointer}}
.err{{color:#b91c1c;font-size:.9rem;margin-top:.8rem}}</style></head><body>
<form method="post" action="/login"><h1>GAD Studio</h1><p>Black-box distillation with adversarial training</p>
<label for="username">User name</label><input id="username" name="username" autocomplete="username" autofocus>
<label for="password">Password</label><input id="password" name="password" type="password"
autocomplete="current-password"><input type="hidden" name="next" value="{next}">
<button type="submit">Log in</button>{error}</form></body></html>"""


def _safe_next(value: str) -> str:
    # Only paths on this site: never redirect a fresh login to another host.
    return value if value.startswith("/") and not value.startswith("//") else "/ui/"


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(next: str = "/ui/") -> HTMLResponse:
    import html

    return HTMLResponse(LOGIN_PAGE.format(next=html.escape(_safe_next(next)), error=""))


@router.post("/login", include_in_schema=False)
def login_form(request: Request, session: DB, ctx: Ctx, username: str = Form(""), password: str = Form(""),
               next: str = Form("/ui/")):
    import html

    try:
        user = user_service.authenticate(session, username, password, address=_address(request))
    except StudioError as err:
        session.commit()
        page = LOGIN_PAGE.format(next=html.escape(_safe_next(next)),
                                 error=f'<div class="err" role="alert">{html.escape(err.message)}</div>')
        return HTMLResponse(page, status_code=err.http_status)
    session.commit()
    cookie, _ = make_session(ctx.settings.fernet_key(), user.id, user.session_epoch)
    response = RedirectResponse(_safe_next(next), status_code=303)
    _set_cookie(response, request, cookie, ctx.settings.cookie_secure)
    return response


@router.get("/logout", include_in_schema=False)
def logout_page(request: Request, session: DB, ctx: Ctx) -> RedirectResponse:
    _end_sessions(request, session, ctx)
    response = RedirectResponse("/login", status_code=303)
    _drop_cookie(response, request, ctx.settings.cookie_secure)
    return response


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse("/ui/", status_code=307)
