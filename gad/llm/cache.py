"""The response cache: one content-addressed store shared by every collection and judgement.

A request's key is a hash of what decides its answer (base URL, model, sampling parameters and the
messages, system prompt included) and of nothing else: not the output file, not the run, not the
API key. So whatever a collection's output is called, and whether the judge or the teacher asks,
a question answered once on this machine is never paid for again.

Where: `default_cache_path()` is `$GAD_DATA_DIR/cache/responses.jsonl` (GAD_DATA_DIR defaults to
`./data`, the studio's data folder); `--cache PATH` chooses another file. The studio keeps the same
records in its database, keyed by the same `cache_key`.

Every request is journalled *before* it is sent: a `pending` record (run, host, pid, time, attempt)
is written under its key, and replaced by the outcome when the attempt ends. A process killed with
requests in flight therefore leaves `pending` records: the next run counts them in its ledger
(`lost_earlier`: sent, perhaps billed, no answer kept) and asks them again. A `pending` record of a
process that is still alive is waited for instead of asked twice.

Records: status `ok` | `refused` | `failed` (final: a verdict about that request, kept) | `failed`
with `final: false` (exhausted retries or a stopped run: asked again next time) | `pending`.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from gad.training.config import ConfigError

DATA_DIR_ENV = "GAD_DATA_DIR"


def data_dir() -> Path:
    """The studio's data folder: $GAD_DATA_DIR, else ./data (the same rule as app/settings.py)."""
    return Path(os.environ.get(DATA_DIR_ENV) or "data")


def default_cache_path() -> Path:
    return data_dir() / "cache" / "responses.jsonl"


class Asked(Protocol):
    """What decides an answer besides the messages (gad.llm.api_client.Endpoint is one)."""

    base_url: str
    model: str

    def sampling(self) -> dict: ...


def cache_key(endpoint: Asked, messages: list[dict]) -> str:
    """Same endpoint, model, sampling and messages -> same key -> never paid twice.

    The recipe must not change: keys already stored (files and the studio's database) would stop
    matching and every answer would be bought again.
    """
    ident = {"base_url": endpoint.base_url.rstrip("/"), "model": endpoint.model, **endpoint.sampling(),
             "messages": messages}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class ResponseStore(Protocol):
    """Where answers (and the journal of requests in flight) are kept; the studio uses database rows.

    `put` replaces the record under a key: `pending` before an attempt, the outcome after it.
    A store may also offer `put_if(key, record, allowed) -> current | None`, an atomic
    check-and-write (JsonlStore: a file lock; a database: a conditional UPDATE/INSERT); with it,
    two runs that reach the same question at the same instant cannot both ask it. Without it, a
    run still waits for another's request in flight, but that instant's race remains.
    """

    def get(self, key: str) -> dict | None: ...
    def put(self, key: str, record: dict) -> None: ...


# --------------------------------------------------------------------------------------------
# The journal's view of a record
# --------------------------------------------------------------------------------------------
HOST = socket.gethostname()
STALE_AFTER_S = 30.0  # a pending record older than the request timeout plus this is a dead run's


def pending_record(run_id: str, attempt: int) -> dict:
    return {"status": "pending", "run": run_id, "host": HOST, "pid": os.getpid(), "sent_at": time.time(),
            "attempt": attempt}


def is_answer(record: dict | None, retry_final: bool = False) -> bool:
    """A record that settles its request: ok always; refusals and final failures unless re-asked."""
    if record is None:
        return False
    return record["status"] == "ok" or (bool(record.get("final")) and not retry_final)


def in_flight_elsewhere(record: dict, run_id: str, timeout: float) -> bool:
    """A pending record of another run that may still get its answer (so: wait, do not ask again)."""
    if record.get("status") != "pending" or record.get("run") == run_id:
        return False
    if time.time() - float(record.get("sent_at", 0)) > timeout + STALE_AFTER_S:
        return False
    if record.get("host") != HOST:
        return True  # another machine: only the clock can tell
    pid = int(record.get("pid", 0))
    if pid == os.getpid():
        return False  # an earlier runner of this process, which is not running any more
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True


# --------------------------------------------------------------------------------------------
# Stores
# --------------------------------------------------------------------------------------------
class JsonlStore:
    """Append-only JSONL file of `{"key", "record"}` lines; the last line of a key wins.

    Several processes may share one file: each line goes out in one `write` on an O_APPEND
    descriptor (so lines never interleave), and `get` first reads what others appended since.
    A line cut short by a crash is skipped on load. Every line reaches the OS at once (a killed
    process loses nothing); fsync, which only guards against losing the machine, runs at most once
    per `sync_every` seconds and at close, because a per-answer fsync stalls the event loop.
    """

    def __init__(self, path: str | Path, sync_every: float = 1.0):
        self.path = Path(path)
        self.sync_every = sync_every
        self._synced = time.monotonic()
        self._data: dict[str, dict] = {}
        self._offset = 0
        self._partial = b""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        self._catch_up()
        if self._partial:  # a crash cut the last line: end it, or our first line would be glued to it
            os.write(self._fd, b"\n")
            self._catch_up()

    def _catch_up(self) -> None:
        size = os.fstat(self._fd).st_size
        if size <= self._offset:
            return
        chunk = self._partial + os.pread(self._fd, size - self._offset, self._offset)
        self._offset = size
        lines = chunk.split(b"\n")
        self._partial = lines.pop()  # empty when the chunk ends with a newline
        for line in lines:
            try:
                row = json.loads(line)
                self._data[row["key"]] = row["record"]
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
                continue  # a line cut short by a crash

    def get(self, key: str) -> dict | None:
        self._catch_up()
        return self._data.get(key)

    def put(self, key: str, record: dict) -> None:
        self._data[key] = record
        line = (json.dumps({"key": key, "record": record}, ensure_ascii=False) + "\n").encode()
        os.write(self._fd, line)  # one write: atomic against other appenders; a kill after it loses nothing
        if time.monotonic() - self._synced >= self.sync_every:
            os.fsync(self._fd)
            self._synced = time.monotonic()

    def put_if(self, key: str, record: dict, allowed: Callable[[dict | None], bool]) -> dict | None:
        """Write `record` only if `allowed(current record)`, atomically against other processes (a file
        lock around read-check-write); returns the current record when it was not allowed."""
        import fcntl

        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            self._catch_up()
            current = self._data.get(key)
            if not allowed(current):
                return current
            self.put(key, record)
            return None
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def items(self) -> Iterator[tuple[str, dict]]:
        self._catch_up()
        return iter(list(self._data.items()))

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


class MemoryStore:
    def __init__(self):
        self._data: dict[str, dict] = {}

    def get(self, key: str) -> dict | None:
        return self._data.get(key)

    def put(self, key: str, record: dict) -> None:
        self._data[key] = record

    def put_if(self, key: str, record: dict, allowed: Callable[[dict | None], bool]) -> dict | None:
        current = self._data.get(key)
        if not allowed(current):
            return current
        self._data[key] = record
        return None


@contextmanager
def open_cache(cache: str | Path | ResponseStore | None = None) -> Iterator[ResponseStore]:
    """A store from a path (None: the shared default file) or an existing store (left open)."""
    if cache is not None and not isinstance(cache, (str, Path)):
        yield cache
        return
    path = Path(cache) if cache is not None else default_cache_path()
    if path.is_dir():
        raise ConfigError(f"--cache {path} is a folder; give a file path, e.g. {path / 'responses.jsonl'}")
    store = JsonlStore(path)
    try:
        yield store
    finally:
        store.close()


def import_legacy_cache(store: ResponseStore, path: Path) -> int:
    """Answers kept by older versions beside an output file join the shared cache (never re-bought)."""
    if not path.is_file():
        return 0
    old = JsonlStore(path)
    try:
        moved = 0
        for key, record in old.items():
            if is_answer(record) and not is_answer(store.get(key)):
                store.put(key, record)
                moved += 1
        return moved
    finally:
        old.close()
