"""/health: no login; says whether the database and the broker answer.

It must answer when the server is busiest, so it shares nothing with request handlers: its own
tiny database engine (one connection, not the request pool), its own two threads (not the handler
thread pool), and short timeouts on every probe."""

from __future__ import annotations

import threading

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request

from app.api.schemas import Health
from app.db.session import make_probe_engine, ping

router = APIRouter(tags=["health"])
PROBE_SECONDS = 3.0
_engines_guard = threading.Lock()
_limiter: dict[int, anyio.CapacityLimiter] = {}


def _probe_engine(ctx, attr: str, url: str):
    """One small engine per process and URL: a single connection, refused after a short wait."""
    with _engines_guard:
        engine = getattr(ctx, attr, None)
        if engine is None:
            engine = make_probe_engine(url, PROBE_SECONDS)
            setattr(ctx, attr, engine)
        return engine


def _database(ctx) -> str:
    try:
        ping(_probe_engine(ctx, "_health_engine", ctx.settings.db_url))
        return "ok"
    except Exception as err:  # reported, not raised: /health must answer when the database does not
        return f"unreachable: {type(err).__name__}"


def _check(ctx) -> Health:
    from app.api import VERSION

    database, broker = _database(ctx), _broker(ctx)
    return Health(status="ok" if database == "ok" and broker == "ok" else "degraded", database=database,
                  broker=broker, version=VERSION)


def _broker(ctx) -> str:
    url = ctx.settings.celery_broker
    try:
        if url.startswith(("redis://", "rediss://")):
            import redis

            redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
        elif url.startswith("sqla+"):
            ping(_probe_engine(ctx, "_broker_engine", url[5:]))
        return "ok"
    except Exception as err:  # reported, not raised (see above)
        return f"unreachable: {type(err).__name__}"


def _own_threads() -> anyio.CapacityLimiter:
    # Per event loop (a limiter belongs to the loop that made it); two threads: probes are short.
    import asyncio

    loop_id = id(asyncio.get_running_loop())
    if loop_id not in _limiter:
        _limiter[loop_id] = anyio.CapacityLimiter(2)
    return _limiter[loop_id]


@router.get("/health", response_model=Health, summary="Database and broker reachability (no login)")
async def health(request: Request) -> Health:
    return await anyio.to_thread.run_sync(_check, request.app.state.ctx, limiter=_own_threads())
