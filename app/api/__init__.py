"""The web server: `create_app(settings)` builds the FastAPI app over the studio's services.

    /health             no login: database and broker reachability
    /api/...            the REST API (cookie session with CSRF, or Authorization: Bearer <token>)
    /v1/...             OpenAI-compatible chat with checkpoints, base models and endpoints
    /ui                 the dashboard (Gradio), behind the same login
    /docs               the OpenAPI page
Nothing is built at import time; tests build an app per throwaway database.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import __version__ as VERSION  # the one version, held in gad/__init__.py
from app.context import StudioContext, make_context
from app.settings import Settings


class LruCache:
    """A small thread-safe LRU map (request handlers run on a thread pool)."""

    def __init__(self, size: int):
        import threading
        from collections import OrderedDict

        self.size, self._data, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        return None

    def put(self, key, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


def create_app(settings: Settings | None = None, *, context: StudioContext | None = None, ui: bool = True) -> FastAPI:
    from app.api import errors
    from app.api.limits import BodyLimit
    from app.api.routes import (
        annotate,
        auth,
        conversations,
        datasets,
        endpoints,
        evaluations,
        health,
        jobs,
        runs,
        studies,
        users,
        v1,
    )
    from app.services.chat import ModelCache

    ctx = context or make_context(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        import anyio.to_thread

        from app.services.uploads import sweep_uploads

        # Handler threads = GAD_WEB_THREADS: the database pool is sized against this number.
        anyio.to_thread.current_default_thread_limiter().total_tokens = ctx.settings.web_threads
        with ctx.sessions() as s:  # scratch of a server killed mid-upload; files no job waits for
            sweep_uploads(s, ctx.settings.data_dir / "uploads")
        yield
        ctx.producer.close()

    app = FastAPI(title="GAD Studio", version=VERSION, lifespan=lifespan,
                  description="Black-box distillation of LLMs with Generative Adversarial Distillation. "
                              "Log in with POST /api/auth/login, or send `Authorization: Bearer <token>` "
                              "(`gad-studio users token NAME`).")
    app.state.ctx = ctx
    app.state.models = ModelCache(int(ctx.settings.serve_memory_mb * 2**20), ctx.settings.allow_remote_code)
    app.state.metrics_cache = LruCache(128)
    errors.install(app)
    app.add_middleware(BodyLimit, upload_limit=int(ctx.settings.max_upload_mb * 2**20))
    for module in (health, auth, users, datasets, endpoints, jobs, runs, evaluations, studies, annotate,
                   conversations):
        app.include_router(module.router)
    app.include_router(v1.router)
    if ui:
        from app.ui import mount

        mount(app, ctx)
    return app
