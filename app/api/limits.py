"""A cap on request bodies, enforced before anything reads them.

FastAPI parses a body (and Starlette spools a multipart upload to disk) before the route's
dependencies run, so without this an anonymous client could make the server store gigabytes only
to answer 401. So:
  - a declared length over the route's cap is refused at once (413);
  - an upload (POST /api/datasets) is authenticated and authorised here, from its headers, before
    one byte of its body is read: 401/403 at once;
  - a streamed (chunked) body is spooled (memory up to SPOOL_IN_MEMORY, then a temporary file) up
    to the cap, refused there if it goes past, and replayed to the app in chunks. Twenty clients
    streaming 200 MB at once cost disk, not 4 GB of memory.
Uploads to /api/datasets get GAD_MAX_UPLOAD_MB; every other route a small JSON-sized cap.
"""

from __future__ import annotations

import json
import tempfile

from starlette.concurrency import run_in_threadpool

DEFAULT_LIMIT = 4 * 2**20
SPOOL_IN_MEMORY = 2**20  # per streamed request, before it rolls over to disk
REPLAY_CHUNK = 2**16


class BodyLimit:
    def __init__(self, app, upload_limit: int, default_limit: int = DEFAULT_LIMIT,
                 upload_paths: tuple[str, ...] = ("/api/datasets",)):
        self.app, self.upload_limit, self.default_limit = app, upload_limit, default_limit
        self.upload_paths = upload_paths

    def _limit(self, path: str) -> int:
        # The upload route takes the upload cap plus room for the multipart envelope and form fields.
        return self.upload_limit + 2**16 if path in self.upload_paths else self.default_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        limit = self._limit(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await _too_large(send, limit)
        if scope["path"] in self.upload_paths and scope["method"] == "POST":
            refused = await run_in_threadpool(_upload_refusal, scope)
            if refused is not None:
                return await _answer(send, *refused)
        if declared is not None:
            return await self.app(scope, receive, send)  # the server stops reading at the declared length
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            if not await _spool(receive, spool, limit):
                return await _too_large(send, limit)
            await self.app(scope, _replay(spool, receive), send)


async def _spool(receive, spool, limit: int) -> bool:
    """Read a streamed body into `spool`; False (stop reading) once it passes `limit`."""
    seen = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return True  # the client went away: the app sees an empty body, then the disconnect
        body = message.get("body", b"")
        seen += len(body)
        if seen > limit:
            return False
        spool.write(body)  # a chunk at a time; past SPOOL_IN_MEMORY into the page cache of a temporary file
        if not message.get("more_body"):
            spool.seek(0)
            return True


def _replay(spool, receive):
    done = False

    async def replay():
        nonlocal done
        if done:
            return await receive()
        chunk = spool.read(REPLAY_CHUNK)
        more = len(chunk) == REPLAY_CHUNK
        done = not more
        return {"type": "http.request", "body": chunk, "more_body": more}

    return replay


def _upload_refusal(scope) -> tuple[int, dict] | None:
    """(status, body) when the request may not upload: no valid credentials (401) or a role that may
    not (403). The same checks the route runs, made before the body is read."""
    from starlette.requests import Request

    from app.api.deps import user_from_request
    from app.auth.policy import require
    from app.errors import StudioError, Unauthenticated

    ctx = scope["app"].state.ctx
    session = ctx.sessions()
    try:
        user = user_from_request(Request(scope), session, ctx)
        if user is None:
            raise Unauthenticated("log in (POST /api/auth/login) or send 'Authorization: Bearer <token>' before "
                                  "uploading")
        require(user, "datasets")
    except StudioError as err:
        return err.http_status, err.as_dict()
    finally:
        session.rollback()
        session.close()
    return None


async def _too_large(send, limit: int) -> None:
    await _answer(send, 413, {"error": "too_large", "field": "body",
                              "message": f"the request body is larger than this route accepts ({limit:,} bytes; "
                                         f"uploads: GAD_MAX_UPLOAD_MB)"})


async def _answer(send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
               (b"connection", b"close")]  # the unread body is not worth draining
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
