"""Chat with anything the studio knows: checkpoints, base models and teacher endpoints.

The registry names every model by a stable, readable id:
    run-12/step-400         a checkpoint's student
    base/<folder> or org/name   a base model (the students of runs, plus GAD_BASE_MODELS)
    endpoint/<name>         a configured teacher/judge endpoint (answers are proxied to it)
Local models stay loaded in a small cache bounded by a memory budget (least recently used goes
first); requests to one model take turns on its lock, so a burst cannot overload the machine.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Checkpoint, Endpoint as EndpointRow, Run
from app.errors import InvalidInput, NotFound, StudioError
from app.settings import Settings


@dataclass(frozen=True)
class ModelEntry:
    id: str
    kind: str                  # checkpoint | base | endpoint
    path: str | None = None    # local folder or hub id for checkpoint/base
    endpoint_id: int | None = None
    created: int = 0


def _base_id(student: str) -> str:
    path = Path(student)
    return f"base/{path.name}" if student.startswith(("/", ".", "~")) or path.exists() else student


def list_models(session: Session, settings: Settings) -> list[ModelEntry]:
    out: dict[str, ModelEntry] = {}
    # Newest first: the run just trained and its latest checkpoint are what people pick.
    for ck, run_id in session.execute(select(Checkpoint, Checkpoint.run_id)
                                      .order_by(Checkpoint.run_id.desc(), Checkpoint.step.desc())):
        mid = f"run-{run_id}/step-{ck.step}"
        out[mid] = ModelEntry(mid, "checkpoint", str(Path(ck.path) / "student"), created=int(ck.created_at.timestamp()))
    students = [c.get("student") for c in session.scalars(select(Run.config))] + list(settings.base_models)
    for student in students:
        if student and _base_id(student) not in out:
            out[_base_id(student)] = ModelEntry(_base_id(student), "base", student)
    for row in session.scalars(select(EndpointRow).order_by(EndpointRow.id)):
        mid = f"endpoint/{row.name}"
        out[mid] = ModelEntry(mid, "endpoint", endpoint_id=row.id, created=int(row.created_at.timestamp()))
    return list(out.values())


CHECKPOINT_ID = re.compile(r"run-([0-9]{1,9})/step-([0-9]{1,9})")


def find_model(session: Session, settings: Settings, model_id: str) -> ModelEntry:
    """One model by id: checkpoints and endpoints by a direct lookup, base models from the list."""
    if m := CHECKPOINT_ID.fullmatch(model_id):
        ck = session.scalar(select(Checkpoint).where(Checkpoint.run_id == int(m[1]), Checkpoint.step == int(m[2])))
        if ck is not None:
            return ModelEntry(model_id, "checkpoint", str(Path(ck.path) / "student"),
                              created=int(ck.created_at.timestamp()))
    elif model_id.startswith("endpoint/"):
        row = session.scalar(select(EndpointRow).where(EndpointRow.name == model_id[9:]))
        if row is not None:
            return ModelEntry(model_id, "endpoint", endpoint_id=row.id, created=int(row.created_at.timestamp()))
    else:
        for entry in list_models(session, settings):
            if entry.id == model_id and entry.kind == "base":
                return entry
    raise NotFound(f"no model {model_id!r}; GET /v1/models lists them", field="model")


class Busy(StudioError):
    http_status, exit_code, title = 429, 8, "busy"

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class ModelCache:
    """Loaded models by path, least recently used evicted beyond `budget_bytes`; one lock per model."""

    def __init__(self, budget_bytes: int, allow_remote_code: bool = False):
        self.budget, self.allow_remote_code = budget_bytes, allow_remote_code
        self._models: OrderedDict[str, object] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, path: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(path, threading.Lock())

    def acquire(self, path: str, timeout: float) -> threading.Lock:
        """The model's lock, waited for at most `timeout` seconds: requests to one model take turns, and
        a burst is refused (429) instead of filling the server's thread pool with waiters."""
        lock = self.lock(path)
        if not lock.acquire(timeout=timeout):
            raise Busy(f"model {path!r} is answering other requests; try again shortly", retry_after=5)
        return lock

    def get(self, path: str):
        """The loaded model (loading it if needed). Call with `lock(path)` held."""
        from gad.generation import load_model

        with self._guard:
            if path in self._models:
                self._models.move_to_end(path)
                return self._models[path]
        if not Path(path).exists() and not self.allow_remote_code and path.count("/") != 1:
            raise InvalidInput(f"model {path!r} is not a local folder", field="model")
        try:
            loaded = load_model(path, trust_remote_code=self.allow_remote_code)
        except OSError as err:  # missing or broken folder, or a hub id with no network
            raise InvalidInput(f"model {path!r} cannot be loaded: {str(err).splitlines()[0]}", field="model") from None
        with self._guard:
            self._models[path] = loaded
            while len(self._models) > 1 and sum(m.bytes for m in self._models.values()) > self.budget:
                self._models.popitem(last=False)  # the least recently used model goes first
        return loaded

    def loaded(self) -> list[str]:
        with self._guard:
            return list(self._models)

    def clear(self) -> None:
        with self._guard:
            self._models.clear()
