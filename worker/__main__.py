"""`python -m worker`: a Celery worker for the studio's queues (what `gad-studio worker` runs).

It migrates the database, starts a reconciler thread (marks runs of dead workers interrupted, from
any live worker), and serves the queues. The worker process is its own entry point, so the web and
CLI layers (app/) never import worker code.
"""

from __future__ import annotations

import argparse
import sys
import threading


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m worker", description=__doc__.splitlines()[0])
    p.add_argument("--queues", default="gpu,io", help="Comma-separated queues: gpu (training), io (API calls).")
    p.add_argument("--pool", default="solo", help="Celery pool; solo runs one job at a time in the worker process.")
    p.add_argument("--concurrency", type=int, default=1, help="Jobs at once (with a pool other than solo).")
    p.add_argument("--loglevel", default="INFO", help="Celery log level (DEBUG, INFO, WARNING, ERROR).")
    p.add_argument("--hostname", default=None, help="Worker name, e.g. gpu1@%%h (default: celery@host).")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from app.context import make_context
    from app.db.session import session_scope
    from app.services.runs import reconcile
    from gad.progress import quiet_libraries
    from worker.celery_app import make_celery

    ns = parse(argv)
    quiet_libraries()
    ctx = make_context()
    app = make_celery(ctx.settings, ctx)

    def reconciler():
        stop = threading.Event()
        while not stop.wait(max(1.0, ctx.settings.heartbeat_timeout / 2)):
            with session_scope(ctx.sessions) as s:
                for run_id in reconcile(s, ctx.settings.heartbeat_timeout):
                    print(f"run {run_id}: worker lost, marked interrupted", flush=True)

    threading.Thread(target=reconciler, name="reconciler", daemon=True).start()
    argv = ["worker", "-Q", ns.queues, "--pool", ns.pool, "--concurrency", str(ns.concurrency),
            "--loglevel", ns.loglevel, "--without-gossip", "--without-mingle"]
    if ns.hostname:
        argv += ["-n", ns.hostname]
    app.worker_main(argv=argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
