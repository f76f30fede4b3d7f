"""The one place errors become HTTP answers. Every 4xx body says what was wrong and where:
{"error": kind, "message": ..., "field"?: ..., "where"?: ..., "errors"?: [{field, message}]}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import StudioError, as_studio_error

log = logging.getLogger("gad_studio.api")


def _field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or str(loc[0] if loc else "request")


def install(app: FastAPI) -> None:
    @app.exception_handler(StudioError)
    async def studio_error(_: Request, err: StudioError):
        headers = {}
        if getattr(err, "retry_after", None):
            headers["Retry-After"] = str(int(err.retry_after) + 1)
        if err.http_status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(err.as_dict(), status_code=err.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, err: RequestValidationError):
        errors = [{"field": _field(e.get("loc", ())), "message": e.get("msg", "invalid")} for e in err.errors()]
        first = errors[0] if errors else {"field": "request", "message": "invalid"}
        return JSONResponse({"error": "invalid_input", "message": f"{first['field']}: {first['message']}",
                             "field": first["field"], "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, err: StarletteHTTPException):
        message = str(err.detail)
        if message == "Invalid multipart data.":  # Starlette's words alone do not say what to fix
            message = ("the upload could not be read as multipart form data: send the file as the 'file' field, "
                       "with a file name under 255 characters")
            return JSONResponse({"error": "invalid_input", "message": message, "field": "file"}, status_code=400)
        if message == "There was an error parsing the body":  # FastAPI's words for json.loads failing deep down
            message = ("the request body could not be parsed: malformed, or nested too deeply (JSON nested more than "
                       "a few hundred levels is refused)")
            return JSONResponse({"error": "invalid_input", "message": message, "field": "body"}, status_code=400)
        return JSONResponse({"error": "http_error", "message": message}, status_code=err.status_code,
                            headers=getattr(err, "headers", None))

    @app.exception_handler(IntegrityError)
    async def integrity(request: Request, err: IntegrityError):
        # The database refused a write a service did not foresee (two requests racing for one name):
        # a conflict for the client, and a line in the log for us.
        log.warning("integrity error on %s %s: %s", request.method, request.url.path, err.orig)
        return JSONResponse({"error": "conflict", "message": "the request conflicts with the current data (a "
                             "duplicate name, or a row still in use); reload and try again"}, status_code=409)

    @app.exception_handler(SATimeout)
    async def pool_exhausted(request: Request, err: SATimeout):
        # Every connection is busy (overload): the client should come back, not see a 500.
        log.warning("no database connection free for %s %s", request.method, request.url.path)
        return JSONResponse({"error": "overloaded", "message": "the server is busy (no database connection free); "
                             "retry after a few seconds"}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(OperationalError)
    async def database_busy(request: Request, err: OperationalError):
        # SQLite's one writer at a time: a write that waited out the busy timeout behind a long one (a big
        # import) is overload, not a bug. Anything else the database refused is a 500, logged.
        if "database is locked" in str(err.orig):
            log.warning("database locked for %s %s", request.method, request.url.path)
            return JSONResponse({"error": "overloaded", "message": "the database is busy with a long write (a large "
                                 "import?); retry after a few seconds"}, status_code=503, headers={"Retry-After": "5"})
        return await unexpected(request, err)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception):
        mapped = as_studio_error(err)  # gad's ConfigError / DataError raised deeper down
        if mapped is not None:
            return JSONResponse(mapped.as_dict(), status_code=mapped.http_status)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal", "message": "internal error; the server log has the details"},
                            status_code=500)
