"""`python -m worker`: a Celery worker for the studio's queues (what `gad-studio worker` runs).

It migrates the database, starts a reconciler thread (marks runs of dead workers interrupted, from
any live worker), and serves the queues. The worker process is its own entry point, so the web and
CLI layers (app/) never import worker code.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading

log = logging.getLogger("gad_studio.worker")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m worker", description=__doc__.splitlines()[0])
    p.add_argument("--queues", default="gpu,io", help="Comma-separated queues: gpu (training), io (API calls).")
    p.add_argument("--pool", default="solo", help="Celery pool; solo runs one job at a time in the worker process.")
    p.add_argument("--concurrency", type=int, default=1, help="Jobs at once (with a pool other than solo).")
    p.add_argument("--loglevel", default="INFO", help="Celery log level (DEBUG, INFO, WARNING, ERROR).")
    p.add_argument("--hostname", default=None, help="Worker name, e.g. gpu1@%%h (default: celery@host).")
    p.add_argument("--parent-pid", type=int, default=None,
                   help="Set by `gad-studio up`: end when that process ends, and hold the data folder's worker "
                        "lock (worker.pid; worker-io.pid for --queues io) so no second `up` starts a worker "
                        "beside this one.")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from app.context import make_context
    from app.db.session import session_scope
    from app.errors import StudioError
    from app.services.lifecycle import reconcile_now_and_then
    from app.services.sending import unsent
    from gad.training.progress import quiet_libraries
    from worker.celery_app import make_celery

    ns = parse(argv)
    lock = _guard(ns.parent_pid, ns.queues) if ns.parent_pid else None  # before anything slow: `up` may die meanwhile
    quiet_libraries()
    ctx = make_context()
    app = make_celery(ctx.settings, ctx)

    def reconciler():
        """Marks work of dead workers interrupted, and sends rows the broker missed. A database hiccup
        is logged and the loop goes on: this thread dying would hide every later crash."""
        stop, period = threading.Event(), max(1.0, min(ctx.settings.heartbeat_timeout / 2, 10.0))
        while not stop.wait(period):
            try:
                reconcile_now_and_then(ctx, every=period / 2)  # this loop's period is the throttle here
                with session_scope(ctx.sessions) as s:
                    missed = unsent(s)
                for kind, row_id in missed:
                    ctx.enqueue(kind, row_id)
                    log.warning("%s %s: sent to the queue (the broker was down when it was created)", kind, row_id)
            except (SQLAlchemyError, StudioError) as err:
                log.warning("reconciler: %s: %s (trying again)", type(err).__name__, err)

    threading.Thread(target=reconciler, name="reconciler", daemon=True).start()
    argv = ["worker", "-Q", ns.queues, "--pool", ns.pool, "--concurrency", str(ns.concurrency),
            "--loglevel", ns.loglevel, "--without-gossip", "--without-mingle"]
    if ns.hostname:
        argv += ["-n", ns.hostname]
    app.worker_main(argv=argv)
    if lock is not None:
        lock.release()
    return 0


def _guard(parent_pid: int, queues: str):
    """A worker of `gad-studio up`: watch the parent, and hold its queue's lock (worker.pid, worker-io.pid)
    in the data folder while alive."""
    from app.errors import Conflict
    from app.pidlock import WORKER_LOCK, WORKER_LOCKS, HeldElsewhere, PidLock
    from app.settings import get_settings
    from worker.parent import watch_parent

    settings = get_settings()
    watch_parent(parent_pid, settings.runs_dir)
    try:
        return PidLock(settings.data_dir / WORKER_LOCKS.get(queues, WORKER_LOCK)).acquire()
    except HeldElsewhere as held:
        raise Conflict(f"another worker (PID {held.pid}) already serves the data folder "
                       f"{settings.data_dir.resolve()}") from None


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as err:  # a refusal (see _guard) reads as one line in the worker log, not a traceback
        from app.errors import StudioError

        if not isinstance(err, StudioError):
            raise
        print(f"error: {err.message}", file=sys.stderr)
        sys.exit(err.exit_code)
