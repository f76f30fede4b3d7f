"""/health: no login; says whether the database and the broker answer."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import text

from app.api.deps import Ctx
from app.api.schemas import Health

router = APIRouter(tags=["health"])


def _check(ctx) -> Health:
    from app.api import VERSION

    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        database = "ok"
    except Exception as err:  # reported, not raised: /health must answer when the database does not
        database = f"unreachable: {type(err).__name__}"
    broker = _broker(ctx)
    return Health(status="ok" if database == "ok" and broker == "ok" else "degraded", database=database,
                  broker=broker, version=VERSION)


def _broker(ctx) -> str:
    url = ctx.settings.celery_broker
    try:
        if url.startswith(("redis://", "rediss://")):
            import redis

            redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
        elif url.startswith("sqla+"):
            engine = getattr(ctx, "_broker_engine", None)
            if engine is None:  # one small engine per process, not one per probe
                from sqlalchemy import create_engine

                engine = ctx._broker_engine = create_engine(url[5:], pool_size=1, max_overflow=0)
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        return "ok"
    except Exception as err:  # reported, not raised (see above)
        return f"unreachable: {type(err).__name__}"


@router.get("/health", response_model=Health, summary="Database and broker reachability (no login)")
async def health(ctx: Ctx) -> Health:
    return await run_in_threadpool(_check, ctx)
