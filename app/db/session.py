"""Engine and session factories (nothing is connected at import time).

The connection pool is sized against the web server's thread pool: every request handler runs on
one of `threads` threads and holds at most one connection, so `threads + POOL_MARGIN` connections
never run out while handlers wait on something else. Waiting for a connection is bounded by
`pool_timeout`; the API answers that with 503 and Retry-After (app/api/errors.py), never a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

POOL_MARGIN = 8      # connections beyond one per thread: the event loop's own short queries, workers' sweeps
POOL_TIMEOUT = 10.0  # seconds a request waits for a connection before it is answered 503


def pool_size_for(threads: int) -> tuple[int, int]:
    """(pool_size, max_overflow) for a server running `threads` handler threads."""
    total = max(1, threads) + POOL_MARGIN
    size = min(10, total)
    return size, total - size


def make_engine(url: str, threads: int = 40, pool_timeout: float = POOL_TIMEOUT) -> Engine:
    size, overflow = pool_size_for(threads)
    pool = dict(pool_size=size, max_overflow=overflow, pool_timeout=pool_timeout)
    if url.startswith("sqlite"):
        if ":memory:" in url or url in ("sqlite://", "sqlite:///"):
            return create_engine(url, connect_args={"check_same_thread": False})
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record):  # WAL: readers don't block the writer; FKs on
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **pool)


def make_probe_engine(url: str, timeout: float) -> Engine:
    """A one-connection engine for health probes: it shares nothing with the request pool, and every wait
    (for the connection, for the server) is bounded by `timeout` seconds."""
    args = {"timeout": timeout} if url.startswith("sqlite") else {"connect_timeout": int(timeout)}
    return create_engine(url, pool_size=1, max_overflow=0, pool_timeout=timeout,
                         pool_pre_ping=not url.startswith("sqlite"), connect_args=args)


def ping(engine: Engine) -> None:
    """Raise unless the database behind `engine` answers a trivial query."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on error (and re-raise)."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
