"""`gad-studio up`: the whole studio on one machine, in one terminal, with no servers to install.

    1. migrate the embedded SQLite database (or whatever DATABASE_URL names)
    2. create the first admin if there is none (a random password, printed once)
    3. make the demo ready: a tiny offline student and the bundled prompt set with teacher responses
    4. start two worker processes (gpu queue; io queue: uploads and teacher calls never wait behind a
       training run) and the web server; Ctrl-C stops the web server, then the workers
Running it again keeps everything from last time. A run that was training when the studio stopped
is marked interrupted at the next start and resumes from its last checkpoint on request.
One `up` per data folder: a second one, or one started while an earlier `up`'s worker is still alive,
is refused with the PID in the way. The workers end when `up` ends, even when `up` is SIGKILLed
(see worker/parent.py); the web server runs inside `up` itself.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path

WORKER_GRACE_SECONDS = 10  # a training step in flight gets this long to finish before the worker is killed


def ensure_admin(session) -> tuple[str, str | None]:
    """(admin name, the new password if one was just made). GAD_ADMIN_PASSWORD sets it for scripts."""
    from app.enums import Role
    from app.services import users as svc

    if svc.has_admin(session):
        return "", None
    password = os.environ.get("GAD_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    svc.create_user(session, "admin", Role.admin, password)
    return "admin", None if os.environ.get("GAD_ADMIN_PASSWORD") else password


def claim_folder(data_dir: Path):
    """Hold the data folder's `up` lock, or raise Conflict naming the live `up` or orphaned worker in the way.
    Flocks die with their holders, so files left by killed processes do not block."""
    from app.errors import Conflict
    from app.pidlock import UP_LOCK, WORKER_LOCKS, HeldElsewhere, PidLock, ensure_free

    where = data_dir.resolve()
    try:
        lock = PidLock(data_dir / UP_LOCK).acquire()
    except HeldElsewhere as held:
        raise Conflict(f"`gad-studio up` is already running on the data folder {where} (PID {held.pid}); "
                       f"open that one, stop it first, or set another GAD_DATA_DIR") from None
    try:
        for name in WORKER_LOCKS.values():
            ensure_free(data_dir / name)
    except HeldElsewhere as held:
        lock.release()
        raise Conflict(f"a worker of an earlier `gad-studio up` is still running on the data folder {where} "
                       f"(PID {held.pid}); stop it (kill {held.pid}) and start again") from None
    return lock


def start_worker(log_path, queue: str, log_level: str = "INFO") -> subprocess.Popen:
    """A worker for one queue. Two of them: an upload or a teacher collection (io) must not wait
    behind a training run that holds the gpu worker for hours."""
    # Its own process group: the terminal's Ctrl-C reaches `up` only, which then stops the worker in order.
    # --parent-pid: it ends when this process ends, however this one ends (see worker/parent.py).
    # Its chatter (Celery's banner, task lines) goes to a log file; the terminal keeps the studio's own lines.
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "worker", "--queues", queue, "--loglevel", log_level,
                                 "--parent-pid", str(os.getpid())],
                                start_new_session=True, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT)


def stop_worker(proc: subprocess.Popen, runs_dir) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)   # Celery's warm shutdown: finish the step in flight
    try:
        proc.wait(timeout=WORKER_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the run resumes from its last checkpoint next time
        proc.wait()
    for pid_file in runs_dir.glob("*/group.pid"):  # a multi-process run lives in a process group of its own
        try:
            os.killpg(int(pid_file.read_text().strip()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def _watch(proc: subprocess.Popen, queue: str, stopping: threading.Event) -> None:
    code = proc.wait()
    if not stopping.is_set():
        waits = "runs and evaluations" if queue == "gpu" else "uploads and teacher collections"
        print(f"warning: the {queue} worker exited (code {code}); {waits} will wait in the queue. Restart "
              f"`gad-studio up`.", file=sys.stderr, flush=True)


def up(host: str = "127.0.0.1", port: int = 8000, *, demo: bool = True, worker: bool = True) -> int:
    from app.settings import get_settings

    settings = get_settings()
    lock = claim_folder(settings.data_dir)  # first of all: two `up`s must not even migrate one folder together

    import uvicorn

    from app.api import create_app
    from app.context import make_context
    from app.db.session import session_scope
    from app.services.demo import ensure_demo
    from gad.training.progress import quiet_libraries

    quiet_libraries()
    ctx = make_context(settings)
    with session_scope(ctx.sessions) as s:
        admin, password = ensure_admin(s)
        ready = ensure_demo(s, ctx.settings) if demo else None
    if ready is not None and str(ready.model_path) not in ctx.settings.base_models:
        ctx.settings.base_models_csv = ",".join([*ctx.settings.base_models, str(ready.model_path)])
    app = create_app(context=ctx)
    url = f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0') else host}:{port}/ui/"
    print(f"\n  GAD Studio  {url}", flush=True)
    if password:
        print(f"  first admin: user 'admin', password {password}  (shown once; change it under Users)", flush=True)
    elif admin:
        print("  first admin: user 'admin', password from GAD_ADMIN_PASSWORD", flush=True)
    if ready is not None:
        print(f"  demo: dataset #{ready.dataset_id} and the tiny student {ready.model_path} are ready; "
              f"New run -> preset 'quick CPU smoke test'", flush=True)
    logs = {queue: ctx.settings.data_dir / "logs" / name for queue, name in (("gpu", "worker.log"),
                                                                             ("io", "worker-io.log"))}
    print(f"  data: {ctx.settings.data_dir.resolve()}  ·  worker logs: {logs['gpu'].parent.resolve()}", flush=True)
    print(f"  API docs: {url.replace('/ui/', '/docs')}  ·  Ctrl-C stops\n", flush=True)

    stopping = threading.Event()
    procs = {queue: start_worker(log, queue) for queue, log in logs.items()} if worker else {}
    for queue, proc in procs.items():
        threading.Thread(target=_watch, args=(proc, queue, stopping), name=f"{queue}-worker-watch",
                         daemon=True).start()
    try:
        uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")).run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled; here it is the normal way to stop
        pass
    finally:
        stopping.set()
        if procs:
            print("stopping the workers ...", flush=True)
        for proc in reversed(procs.values()):  # io first: it has no step to finish
            stop_worker(proc, ctx.settings.runs_dir)
        ctx.close()
        lock.release()
        print("stopped.", flush=True)
    return 0
