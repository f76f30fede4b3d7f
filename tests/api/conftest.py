"""The web server as its users meet it: uvicorn on a loopback port, a real worker process, users of
every role with API tokens, and httpx clients speaking HTTP over real sockets."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, wait_for  # noqa: F401 (re-exported for the api tests)
from tests.studio.conftest import Worker, studio_env

PASSWORD = "correct horse battery"


class ServerThread:
    """uvicorn serving an app in a thread of this process (same database, real socket)."""

    def __init__(self, app, port: int):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.url = f"http://127.0.0.1:{port}"

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=15)


@dataclass
class Studio:
    url: str
    ctx: object
    env: dict
    tokens: dict[str, str] = field(default_factory=dict)
    worker: Worker | None = None

    def client(self, role: str | None = None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kw)


def make_studio(tmp: Path, db_url: str | None = None, broker: str | None = None, **settings_env) -> tuple:
    from app.api import create_app
    from app.context import make_context
    from app.db.session import session_scope
    from app.services import users as user_service
    from app.settings import Settings

    data = tmp / "data"
    db_url = db_url or f"sqlite:///{data / 'studio.db'}"
    values = {"GAD_DATA_DIR": data, "DATABASE_URL": db_url, "GAD_HEARTBEAT_SECONDS": 0.5, "GAD_HEARTBEAT_TIMEOUT": 4,
              **settings_env}
    if broker:
        values["CELERY_BROKER_URL"] = broker
    ctx = make_context(Settings(**values))
    tokens = {}
    with session_scope(ctx.sessions) as s:
        for role in ("admin", "researcher", "annotator"):
            user = user_service.create_user(s, role, role, PASSWORD)
            tokens[role] = user_service.create_token(s, user, "tests")[1]
    app = create_app(context=ctx, ui=False)
    env = studio_env(data, db_url, broker)
    return app, ctx, env, tokens


@contextmanager
def serving(tmp: Path, db_url: str | None = None, queues: str = "io", **settings_env):
    """A server over a fresh studio, with a worker: io (uploads are parsed by its jobs), or "gpu,io" (runs train)."""
    app, ctx, env, tokens = make_studio(tmp, db_url, **settings_env)
    worker = Worker(env, tmp / "worker.log", queues=queues).start()
    try:
        with ServerThread(app, free_port()) as srv:
            yield Studio(srv.url, ctx, env, tokens, worker)
    finally:
        worker.stop()
        ctx.close()


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """One server for the tests that need HTTP, with an io worker for uploads (no training)."""
    with serving(tmp_path_factory.mktemp("studio"), GAD_MAX_UPLOAD_MB=0.05) as studio:
        yield studio


@pytest.fixture(scope="module")
def live_studio(tmp_path_factory):
    """A server plus a real worker process on the embedded broker: runs really train."""
    tmp = tmp_path_factory.mktemp("live")
    try:
        with serving(tmp, queues="gpu,io") as studio:
            yield studio
    finally:
        if os.environ.get("GAD_TEST_SHOW_WORKER_LOG"):
            print((tmp / "worker.log").read_text()[-5000:])
