"""A cap on request bodies, enforced before anything reads them.

FastAPI parses a body (and Starlette spools a multipart upload to disk) before the route's
dependencies run, so without this an anonymous client could make the server store gigabytes only
to answer 401. Declared lengths over the cap are refused at once; a streamed (chunked) body is read
up to the cap before the app sees it, and refused there if it goes past. Uploads to /api/datasets get GAD_MAX_UPLOAD_MB;
every other route a small JSON-sized cap.
"""

from __future__ import annotations

import json

DEFAULT_LIMIT = 4 * 2**20


class BodyLimit:
    def __init__(self, app, upload_limit: int, default_limit: int = DEFAULT_LIMIT,
                 upload_paths: tuple[str, ...] = ("/api/datasets",)):
        self.app, self.upload_limit, self.default_limit, self.upload_paths = app, upload_limit, default_limit, upload_paths

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
        if declared is not None:
            return await self.app(scope, receive, send)  # the server stops reading at the declared length
        # A streamed (chunked) body: read it up to the cap first, then hand it to the app whole.
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            seen += len(message.get("body", b""))
            if seen > limit:
                return await _too_large(send, limit)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(send, limit: int) -> None:
    body = json.dumps({"error": "too_large", "field": "body",
                       "message": f"the request body is larger than this route accepts ({limit:,} bytes; uploads: "
                                  f"GAD_MAX_UPLOAD_MB)"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
