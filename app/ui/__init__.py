"""The dashboard: two Gradio apps mounted in the FastAPI app, behind the studio's login.

    /ui/        the studio (researchers and admins): layout.py, one module per page in pages/
    /annotate/  the annotator's view (anyone allowed to annotate): pages/annotate.py

Annotators get an app of their own rather than a hidden tab, so their browser never receives the
rest of the studio, not even its layout. `mount(api, ctx)` mounts both. The user comes from the
same session cookie the REST API reads; pages call services in-process (never over HTTP) and hold
no business logic. A browser that opens a page without a session is sent to /login?next=...; an
annotator who opens /ui/ is sent to /annotate/.
"""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse

from app.auth.policy import allowed
from app.auth.tokens import session_of
from app.services.users import user_for_session

STUDIO_PATH = "/ui"
ANNOTATE_PATH = "/annotate"


def session_user(ctx, secret: bytes, request) -> tuple[str, str] | None:
    """(name, role) of the user whose session cookie this request carries, or None.

    Unlike the REST API, no CSRF header is asked for: Gradio's own requests cannot send one, and the
    cookie is SameSite=Lax, so a cross-site page cannot make the browser send it with a POST."""
    data = session_of(secret, request.cookies)
    if data is None:
        return None
    with ctx.sessions() as s:
        user = user_for_session(s, data["uid"], data.get("epoch", 0))
        if user is None:
            return None  # deactivated, logged out everywhere, or the password changed since
        return user.name, user.role


def gate(ctx, secret: bytes, action: str):
    """Gradio's auth_dependency for one app: the user's name if the policy allows `action`, else None (401)."""
    def dependency(request: Request) -> str | None:
        found = session_user(ctx, secret, request)
        return found[0] if found is not None and allowed(found[1], action) else None

    return dependency


class LoginRedirect:
    """Pure ASGI middleware (streams pass through untouched): a browser GET of a dashboard page without
    a session goes to the login page; an annotator's GET of the studio goes to the annotation page."""

    PAGES = {STUDIO_PATH, STUDIO_PATH + "/", ANNOTATE_PATH, ANNOTATE_PATH + "/"}

    def __init__(self, app, ctx, secret: bytes):
        self.app, self.ctx, self.secret = app, ctx, secret

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] in self.PAGES:
            found = await run_in_threadpool(session_user, self.ctx, self.secret, Request(scope))
            target = None
            page = ANNOTATE_PATH if scope["path"].startswith(ANNOTATE_PATH) else STUDIO_PATH
            if found is None:
                target = f"/login?next={page}/"
            elif page == STUDIO_PATH and not allowed(found[1], "runs"):
                target = f"{ANNOTATE_PATH}/"
            elif page == ANNOTATE_PATH and not allowed(found[1], "annotate"):
                target = "/logout"
            if target is not None:
                await RedirectResponse(target, status_code=303)(scope, receive, send)
                return
            send = _no_store(send)  # Back after logout must not show a cached page
            if page == STUDIO_PATH:  # the header in the HTML itself: it shows before Gradio's scripts have run
                send = _with_header(send, _header(*found))
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _header(name: str, role: str) -> bytes:
    from app.ui.layout import header_html
    from app.ui.theme import HEADER_CSS

    return f"<style>{HEADER_CSS}</style>{header_html(name, role)}".encode()


def _with_header(send, header: bytes):
    """`send` with `header` written at the top of an HTML page's <body>. Gradio's page is one small document:
    it is held until complete, changed, and sent with its new length; anything else passes through."""
    start, chunks = None, []

    async def wrapped(message):
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(chunks)
        headers = dict(start.get("headers", []))
        if start["status"] == 200 and headers.get(b"content-type", b"").startswith(b"text/html"):
            body = re.sub(rb"<body[^>]*>", lambda m: m.group(0) + header, body, count=1)
        fixed = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": fixed + [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return wrapped


def _no_store(send):
    """`send` with Cache-Control: no-store added to the response's headers."""
    async def wrapped(message):
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
            message = {**message, "headers": headers + [(b"cache-control", b"no-store")]}
        await send(message)
    return wrapped


def mount(api: FastAPI, ctx) -> None:
    import gradio as gr

    from app.ui.common import Ui
    from app.ui.layout import build
    from app.ui.pages.annotate import build_app
    from app.ui.theme import CSS, HOTKEYS_JS, theme

    ui = Ui(ctx, api.state.models)
    secret = ctx.settings.fernet_key()
    max_size = f"{int(ctx.settings.max_upload_mb)}mb"
    # Run history off in both: an annotator's browser must keep no trace of earlier items.
    gr.mount_gradio_app(api, build_app(ui), path=ANNOTATE_PATH, auth_dependency=gate(ctx, secret, "annotate"),
                        theme=theme(), css=CSS, head=HOTKEYS_JS, footer_links=[], run_history=False,
                        max_file_size=max_size, show_error=True)
    gr.mount_gradio_app(api, build(ui), path=STUDIO_PATH, auth_dependency=gate(ctx, secret, "runs"),
                        theme=theme(), css=CSS, footer_links=[], run_history=False, max_file_size=max_size,
                        show_error=True)
    api.add_middleware(LoginRedirect, ctx=ctx, secret=secret)
    _favicon(api, gr)


def _favicon(api: FastAPI, gr) -> None:
    """/favicon.ico for pages outside the dashboard (the login page): the browser asks for it, a 404 is noise."""
    from pathlib import Path

    from starlette.responses import FileResponse

    icon = Path(gr.__file__).parent / "templates" / "frontend" / "favicon.png"
    if icon.is_file() and not any(getattr(r, "path", None) == "/favicon.ico" for r in api.routes):
        api.add_api_route("/favicon.ico", lambda: FileResponse(icon, media_type="image/png",
                                                               headers={"cache-control": "max-age=86400"}),
                          include_in_schema=False)
