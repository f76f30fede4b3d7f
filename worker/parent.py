"""A worker started by `gad-studio up` ends when that `up` ends, however `up` ends.

The worker runs in a session of its own (so the terminal's Ctrl-C reaches `up` alone, which then stops
it in order). If `up` is killed outright (SIGKILL, the OOM killer) nothing stops the worker, and it
would serve the data folder as an orphan beside the next `up`'s worker. Two guards, either suffices:
  - Linux: PR_SET_PDEATHSIG asks the kernel for SIGTERM the moment the parent dies;
  - everywhere: a thread that notices the parent PID change (the orphan is re-parented).
SIGTERM is Celery's warm shutdown; a job that does not finish within GRACE_SECONDS is cut short
(multi-process training groups included), and its run resumes from its last checkpoint next time.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("gad_studio.worker")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
POLL_SECONDS = 0.25
GRACE_SECONDS = 5.0  # `up`'s own orderly stop gives 10 s; an orphan gets less, the whole tree is gone in < 10 s


def _arm_pdeathsig(sig: int) -> bool:
    """Ask the kernel to send `sig` when the parent dies (Linux only); False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _kill_groups(runs_dir: Path) -> None:
    """Training groups run in sessions of their own: end them, since no supervisor will be left."""
    from app.services.group_run import GROUP_PID

    for pid_file in Path(runs_dir).glob(f"*/{GROUP_PID}"):
        try:
            os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)
        except (ProcessLookupError, PermissionError, ValueError, OSError):
            pass


def _on_orphaned(parent_pid: int, runs_dir: Path, signalled: bool) -> None:
    log.warning("the parent `gad-studio up` (PID %s) is gone: stopping this worker", parent_pid)
    if not signalled:
        os.kill(os.getpid(), signal.SIGTERM)  # the same warm shutdown PR_SET_PDEATHSIG would have started
    time.sleep(GRACE_SECONDS)  # a daemon thread: if the warm shutdown finishes first, this never returns
    log.warning("warm shutdown took over %.0f s: ending the job in flight", GRACE_SECONDS)
    _kill_groups(runs_dir)
    logging.shutdown()
    os._exit(1)


def watch_parent(parent_pid: int, runs_dir: Path) -> None:
    """Start the guards for a worker whose parent is `parent_pid`. Call early: before the parent could die."""
    # Armed only counts if the parent was still alive after arming (else the signal was never going to come).
    armed = _arm_pdeathsig(signal.SIGTERM) and os.getppid() == parent_pid

    def poll() -> None:
        while os.getppid() == parent_pid:
            time.sleep(POLL_SECONDS)
        _on_orphaned(parent_pid, runs_dir, signalled=armed)

    threading.Thread(target=poll, name="parent-watch", daemon=True).start()
