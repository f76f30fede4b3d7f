"""One live owner per data folder: a PID file held under an exclusive `flock`.

`gad-studio up` holds `up.pid` for its whole life (it is the web server too) and the workers it starts
hold `worker.pid` (gpu queue: training, evaluations) and `worker-io.pid` (io queue: teacher calls,
uploads). The kernel drops a `flock` when its holder dies, however it dies (SIGKILL, the OOM
killer), so a file left behind by a dead process never blocks a new start: only a live holder does,
and the file names its PID for the message. On systems without `fcntl` the lock is a no-op.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not Linux/macOS: no locking, as before
    fcntl = None

UP_LOCK = "up.pid"          # in the data folder: the live `gad-studio up` (worker and web server's parent)
WORKER_LOCK = "worker.pid"  # in the data folder: the gpu worker that `gad-studio up` started
IO_WORKER_LOCK = "worker-io.pid"  # ... and its io worker
WORKER_LOCKS = {"gpu": WORKER_LOCK, "io": IO_WORKER_LOCK}


class HeldElsewhere(RuntimeError):
    """The lock is held by a live process; `pid` is what its file says (None if unreadable)."""

    def __init__(self, path: Path, pid: int | None):
        self.path, self.pid = path, pid
        super().__init__(f"{path} is held by process {pid if pid is not None else '(unknown)'}")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):  # torn or empty: the holder is still writing it
        return None


class PidLock:
    """`acquire()` takes the lock and writes this PID, or raises HeldElsewhere; it lasts until `release()`
    or process exit. The descriptor is not inherited (PEP 446), so children never keep it alive."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> PidLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise HeldElsewhere(self.path, _read_pid(self.path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays, harmless without a holder
            self._fd = None


def ensure_free(path: Path) -> None:
    """Raise HeldElsewhere if a live process holds the lock at `path`; a file whose writer died is no obstacle."""
    path = Path(path)
    if fcntl is None or not path.is_file():
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HeldElsewhere(path, _read_pid(path)) from None
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
