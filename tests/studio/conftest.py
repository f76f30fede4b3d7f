"""Real services for the studio tests: SQLite files, the machine's PostgreSQL and Redis.

If PostgreSQL or Redis is not running, a throwaway instance is started from the installed
binaries when possible; otherwise the test fails with the command that starts the service.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO, stop_group

PG_ADMIN = os.environ.get("GAD_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("GAD_TEST_REDIS", "redis://127.0.0.1:6379/9")


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


@pytest.fixture(scope="session")
def redis_url():
    if not _port_open("127.0.0.1", 6379):
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("Redis is not running on 127.0.0.1:6379 and redis-server is not installed; start it with: "
                        "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''")
        subprocess.run([binary, "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379", "--save", ""],
                       check=True)
        for _ in range(50):
            if _port_open("127.0.0.1", 6379):
                break
            time.sleep(0.1)
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL


@pytest.fixture(scope="session")
def pg_admin_url():
    if not _port_open("127.0.0.1", 5432):
        clusters = Path("/etc/postgresql")
        if shutil.which("pg_ctlcluster") and clusters.is_dir() and any(clusters.iterdir()):
            version = sorted(p.name for p in clusters.iterdir())[-1]
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
            for _ in range(100):
                if _port_open("127.0.0.1", 5432):
                    break
                time.sleep(0.1)
        if not _port_open("127.0.0.1", 5432):
            pytest.fail("PostgreSQL is not running on 127.0.0.1:5432; start it with: "
                        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start")
    return PG_ADMIN


@pytest.fixture
def pg_url(pg_admin_url):
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"gad_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    yield pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'studio.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def studio_ctx(tmp_path, db_url):
    from app.context import make_context
    from app.settings import Settings

    settings = Settings(GAD_DATA_DIR=tmp_path / "data", DATABASE_URL=db_url)
    ctx = make_context(settings)
    yield ctx
    ctx.close()


class Worker:
    """A real `gad-studio worker` process."""

    def __init__(self, env: dict, log: Path, queues: str = "gpu,io"):
        self.env, self.log, self.queues = env, log, queues
        self.proc = None

    def start(self) -> Worker:
        fh = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--queues", self.queues,
                                      "--loglevel", "WARNING"], env=self.env, cwd=REPO, stdout=fh, stderr=fh,
                                     start_new_session=True)
        return self

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        stop_group(self.proc)


def studio_env(data_dir: Path, db_url: str, broker: str | None) -> dict:
    env = {**os.environ, "GAD_DATA_DIR": str(data_dir), "DATABASE_URL": db_url, "PYTHONPATH": str(REPO),
           "GAD_HEARTBEAT_SECONDS": "0.5", "GAD_HEARTBEAT_TIMEOUT": "4", "OMP_NUM_THREADS": "1"}
    if broker:
        env["CELERY_BROKER_URL"] = broker
    else:
        env.pop("CELERY_BROKER_URL", None)
    return env
