"""What the benchmarks share: a free loopback port, a throwaway database (SQLite file or a PostgreSQL database
dropped afterwards) and a `gad-studio serve` process that has answered /health."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("GAD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def throwaway_database(kind: str, folder: Path) -> tuple[str, Callable[[], None]]:
    """(database URL, drop): a SQLite file in `folder`, or a new PostgreSQL database on the local server."""
    if kind == "sqlite":
        return f"sqlite:///{folder / 'studio.db'}", lambda: None
    if kind != "postgresql":
        raise SystemExit(f"database: sqlite or postgresql, not {kind!r}")
    from sqlalchemy import create_engine, text

    name = f"gad_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))

    def drop():
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()

    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", drop


def start_server(env: dict, log: Path | None = None, wait_s: float = 60.0) -> tuple[subprocess.Popen, str]:
    """`gad-studio serve --no-ui` on a free port with `env`; returns (process, base URL) once /health answers."""
    import httpx

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--no-ui", "--port", str(port),
                               "--log-level", "warning"], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=open(log, "wb") if log else None)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"the server did not answer /health within {wait_s:.0f} s" + (f"; see {log}" if log else ""))
