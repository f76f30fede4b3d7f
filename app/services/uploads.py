"""Uploaded files become datasets in a worker job, so that parsing costs the web server no CPU, memory or
database lock.

    web     stash_upload   check the name, copy the bytes (capped) into data/uploads/job-<id>/, create
                           the `upload` job; the caller commits, then enqueues it
    worker  run_upload     parse with progress (bytes read; then writing starts), import all or nothing,
                           answer {dataset_id, ...}; the file goes once the job has an answer
    start   sweep_uploads  scratch folders of killed processes, and folders no live job waits for

A refused file (a broken line, a bomb, too many records) fails its job with the studio error the
synchronous path raised (status, message, `file:line`, field): lifecycle stores it in the job's result,
and POST /api/datasets answers with it when it waits for the job.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db.models import Job, utcnow
from app.db.session import session_scope
from app.enums import JobKind, RunStatus
from app.errors import InvalidInput, TooLarge
from app.services.datasets import dataset_view, import_dataset
from app.services.jobs import create_job
from gad.data.readers import GZIP_EXPANSION_LIMIT, SUPPORTED_SUFFIXES

SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")
SCRATCH_PREFIX, JOB_PREFIX = "pid", "job-"
# Share of the bar for parsing; inserting takes the rest (measured: about 4:1 for JSONL prompts).
PARSE_SHARE = 0.8
WRITE_EVERY = 1.0  # seconds between progress writes


def upload_suffix(filename: str) -> str:
    """The format suffix of an uploaded file name ('.jsonl', '.csv', '.jsonl.gz' ...), or an error."""
    lower = filename.lower()
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix):
            return suffix
    raise InvalidInput(f"{display_name(filename)}: unsupported file type; use one of {', '.join(SUPPORTED_SUFFIXES)}",
                       field="file")


def display_name(filename: str) -> str:
    """A file name fit to show and store: no folders, no control characters, at most 120 characters."""
    base = filename.replace("\\", "/").split("/")[-1].replace("\x00", "")
    base = SAFE_NAME.sub("_", base).strip(" .") or "upload"
    return base[:120]


# --- web: store the bytes, create the job ---------------------------------------------------------
def stash_upload(session: Session, root: Path, data: bytes | BinaryIO, filename: str, *, max_bytes: int,
                 max_rows: int, name: str | None = None, test_fraction: float = 0.0, seed: int = 42,
                 user_id: int | None = None) -> Job:
    """Check the upload's name and size, copy it a chunk at a time (never whole in memory) under a
    generated name in `root` (data/uploads: the client's file name is never a path), and create its
    `upload` job. Nothing is parsed here. A refused file leaves nothing behind; the caller commits,
    then enqueues the job. The caps (bytes, records) travel in the job: the server's settings decide."""
    if not 0.0 <= test_fraction < 1.0:
        raise InvalidInput("test_fraction must be in [0, 1)", field="test_fraction")
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    suffix, shown = upload_suffix(filename), display_name(filename)
    with scratch_dir(root) as tmp:
        part = tmp / f"upload{suffix}"
        size = _copy_capped(stream, part, max_bytes)
        if size == 0 or (size < 4096 and not part.read_bytes().strip()):
            raise InvalidInput(f"{shown}: the file is empty", field="file")
        job = create_job(session, JobKind.upload, {
            "source": shown, "suffix": suffix, "bytes": size, "name": (name or shown.rsplit(".", 1)[0])[:200],
            "test_fraction": test_fraction, "seed": seed, "max_bytes": max_bytes, "max_rows": max_rows},
            user_id=user_id)
        folder = job_folder(root, job.id)
        folder.mkdir(parents=True, exist_ok=True)
        os.replace(part, folder / f"upload{suffix}")  # same file system: the move is atomic
    return job


def _copy_capped(stream: BinaryIO, path: Path, max_bytes: int) -> int:
    """Copy a chunk at a time; past max_bytes: TooLarge (the partial copy goes with the scratch folder)."""
    size = 0
    with path.open("wb") as out:
        while chunk := stream.read(1 << 20):
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"the file is larger than the limit of {max_bytes:,} bytes (GAD_MAX_UPLOAD_MB)",
                               field="file")
            out.write(chunk)
    return size


def job_folder(root: Path, job_id: int) -> Path:
    return root / f"{JOB_PREFIX}{job_id}"


# --- worker: parse and import ---------------------------------------------------------------------
def run_upload(ctx, job_id: int, claim: str) -> dict:
    """The `upload` job's body: the stored file parsed (a line at a time for JSONL/CSV) and imported all or
    nothing, with its progress on the job row. Its answer names the new dataset."""
    root = ctx.settings.data_dir / "uploads"
    with ctx.sessions() as s:
        job = s.get(Job, job_id)
        params, user_id = dict(job.params), job.created_by
    path = job_folder(root, job_id) / f"upload{params['suffix']}"
    if not path.is_file():
        raise InvalidInput(f"{params['source']}: the uploaded file is no longer stored (its job ended before); "
                           f"upload it again", field="file")
    shown, max_bytes = params["source"], int(params["max_bytes"])
    progress = UploadProgress(ctx.sessions, job_id, claim)
    try:
        with session_scope(ctx.sessions) as s:
            try:
                ds = import_dataset(s, path, name=params["name"], test_fraction=params["test_fraction"],
                                    seed=params["seed"], user_id=user_id, source=shown,
                                    max_bytes=max_bytes * GZIP_EXPANSION_LIMIT, max_rows=int(params["max_rows"]),
                                    max_document_bytes=max_bytes, progress=progress)
            except InvalidInput as err:
                # gad names the stored file; the user knows their file by its own name
                raise type(err)(err.message.replace(str(path), shown), field=err.field or "file",
                                where=(err.where or "").replace(str(path), shown) or None) from None
            view = dataset_view(s, ds)
    except InvalidInput:
        shutil.rmtree(path.parent, ignore_errors=True)  # refused for good: a retry would read the same bytes
        raise
    progress.finish()
    shutil.rmtree(path.parent, ignore_errors=True)
    return {"dataset_id": view["id"], "name": view["name"], "n_prompts": view["n_prompts"],
            "with_response": view["with_response"]}


class UploadProgress:
    """Writes an import's progress on its job row (at most once a second): done/total in thousandths,
    parsing first (bytes read of the stored file) with an ETA, then the start of writing (the prompts
    to write; the rest comes with the answer)."""

    def __init__(self, sessions, job_id: int, claim: str):
        self.sessions, self.job_id, self.claim = sessions, job_id, claim
        self.t0, self._written = time.monotonic(), 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        share = done / total if total else 1.0
        fraction = PARSE_SHARE * share if phase == "parse" else PARSE_SHARE + (1 - PARSE_SHARE) * share
        now = time.monotonic()
        if now - self._written < WRITE_EVERY and share < 1.0 and phase == "parse":
            return
        self._written = now
        elapsed = now - self.t0
        eta = elapsed / fraction * (1 - fraction) if fraction > 0.02 else None
        unit = "bytes" if phase == "parse" else "prompts"
        self._write(done=int(1000 * fraction), eta_seconds=eta,
                    stats={"phase": phase, unit: done, f"total_{unit}": total, "elapsed_s": round(elapsed, 1)})

    def finish(self) -> None:
        elapsed = round(time.monotonic() - self.t0, 1)
        self._write(done=1000, eta_seconds=None, stats={"phase": "done", "elapsed_s": elapsed})

    def _write(self, **values) -> None:
        with session_scope(self.sessions) as s:
            s.execute(update(Job).where(Job.id == self.job_id, Job.claim == self.claim)
                      .values(total=1000, heartbeat_at=utcnow(), **values))


# --- scratch space --------------------------------------------------------------------------------
@contextmanager
def scratch_dir(root: Path) -> Iterator[Path]:
    """A private folder under data/uploads, named after this process so that a later start can tell
    the leftovers of a killed process (sweep_uploads) from uploads in progress."""
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f"{SCRATCH_PREFIX}{os.getpid()}-") as tmp:
        yield Path(tmp)


def sweep_uploads(session: Session, root: Path) -> int:
    """Remove what no one will read: scratch folders of processes that are gone (a server killed
    mid-upload), job folders whose job has ended or does not exist (a commit that never came), and
    anything else. Scratch of live processes and files of waiting jobs stay. Returns how many went."""
    if not root.is_dir():
        return 0
    waiting = set(session.scalars(select(Job.id).where(
        Job.kind == JobKind.upload, Job.status.in_([RunStatus.queued, RunStatus.running, RunStatus.interrupted]))))
    removed = 0
    for entry in root.iterdir():
        pid, job_id = _number_after(SCRATCH_PREFIX, entry.name), _number_after(JOB_PREFIX, entry.name)
        if pid is not None and (pid == os.getpid() or _alive(pid)):
            continue
        if job_id is not None and job_id in waiting:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed


def _number_after(prefix: str, name: str) -> int | None:
    match = re.match(rf"^{re.escape(prefix)}(\d+)(-|$)", name)
    return int(match.group(1)) if match else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
