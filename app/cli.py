"""`gad-studio` = gad's commands (train, collect, evaluate, toy, ...) + the studio's (db, worker, runs).

Settings come from the environment (see app/settings.py): DATABASE_URL, CELERY_BROKER_URL,
GAD_DATA_DIR, ... Unset, everything lives under ./data (SQLite database, SQLite broker).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading

from gad.cli import _add_config_flags, build_parser as gad_parser, dispatch


def _context(migrate: bool = True):
    from app.context import make_context

    return make_context(migrate=migrate)


def _celery(ctx):
    from worker.celery_app import make_celery

    return make_celery(ctx.settings, ctx)


def enqueue_run(ctx, run_id: int) -> None:
    _celery(ctx).send_task("gad.train_run", args=[run_id], queue="gpu")


def cmd_db(ns) -> int:
    from app.db import migrate
    from app.settings import get_settings

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.db_url
    if ns.action == "upgrade":
        migrate.upgrade(url, ns.revision or "head")
    elif ns.action == "downgrade":
        migrate.downgrade(url, ns.revision or "base")
    print(f"database {url.split('@')[-1]} at revision {migrate.current(url)}")
    return 0


def cmd_worker(ns) -> int:
    from app.db.session import session_scope
    from app.services.runs import reconcile

    from gad.progress import quiet_libraries

    quiet_libraries()
    ctx = _context()
    app = _celery(ctx)

    def reconciler():  # marks runs of dead workers interrupted, from any live worker
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


def cmd_runs(ns) -> int:
    from app.db.session import session_scope
    from app.services import runs as svc

    ctx = _context()
    if ns.action == "submit":
        from gad.config import RunConfig, load_yaml

        values = load_yaml(ns.config) if ns.config else {}
        values.update({k: getattr(ns, k) for k in RunConfig.model_fields if getattr(ns, k, None) is not None})
        values["output"] = "assigned-by-the-studio"
        with session_scope(ctx.sessions) as s:
            run_id = svc.submit_run(s, ctx.settings, values, name=ns.name).id
        enqueue_run(ctx, run_id)
        print(run_id)
        return 0
    if ns.action == "list":
        from sqlalchemy import select

        from app.db.models import Run

        with ctx.sessions() as s:
            svc.reconcile(s, ctx.settings.heartbeat_timeout)
            for r in s.scalars(select(Run).order_by(Run.id.desc()).limit(50)):
                print(f"{r.id:5d}  {r.status:11s} {r.method:9s} {r.step:6d}/{r.total_steps or 0:<6d} {r.name}")
        return 0
    with session_scope(ctx.sessions) as s:
        svc.reconcile(s, ctx.settings.heartbeat_timeout)
        if ns.action == "cancel":
            run = svc.cancel_run(s, ns.id)
            print(f"run {run.id}: {'cancel requested' if run.status == 'running' else run.status}")
        elif ns.action == "resume":
            svc.resume_run(s, ns.id)
        elif ns.action == "fork":
            overrides = {k: v for k, v in vars(ns).items() if k in _config_keys() and v is not None}
            child = svc.fork_run(s, ctx.settings, ns.id, ns.step, overrides)
            new_id = child.id
        summary = svc.run_summary(s, ns.id) if ns.action == "show" else None
    if ns.action == "resume":
        enqueue_run(ctx, ns.id)
        print(f"run {ns.id}: queued to resume from its last checkpoint")
    elif ns.action == "fork":
        enqueue_run(ctx, new_id)
        print(new_id)
    elif ns.action == "show":
        if ns.json:
            print(json.dumps(summary, indent=2, default=str))
        else:
            _print_summary(summary)
    return 0


def _config_keys():
    from gad.config import RunConfig

    return set(RunConfig.model_fields) - {"output"}


def _print_summary(r: dict) -> None:
    pct = f"{100 * r['progress']:.0f}%" if r["total_steps"] else "-"
    eta = f", ETA {r['eta_seconds']:.0f}s" if r.get("eta_seconds") else ""
    print(f"run {r['id']} ({r['name']}): {r['status']}, stage {r['stage'] or '-'}, "
          f"step {r['step']}/{r['total_steps'] or '?'} ({pct}{eta})")
    if r["error"]:
        print(f"  error: {r['error'].splitlines()[0]}")
    if r["last_metrics"]:
        keys = ("loss", "disc_loss", "disc_accuracy", "reward_mean", "kl", "student_length")
        print("  last: " + ", ".join(f"{k} {r['last_metrics'][k]:.4g}" for k in keys if k in r["last_metrics"]))
    for c in r["checkpoints"]:
        print(f"  checkpoint step {c['step']} ({c['stage']}): {c['path']}")


def build_parser() -> argparse.ArgumentParser:
    parser = gad_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))

    p = sub.add_parser("db", help="Database migrations (DATABASE_URL, default SQLite under ./data).")
    p.add_argument("action", choices=["upgrade", "downgrade", "current"])
    p.add_argument("--revision", default=None)
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("worker", help="Start a Celery worker for the studio's queues.")
    p.add_argument("--queues", default="gpu,io", help="Comma-separated queues: gpu (training), io (API calls).")
    p.add_argument("--pool", default="solo", help="Celery pool; solo runs one job at a time in the worker process.")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--loglevel", default="INFO")
    p.add_argument("--hostname", default=None)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("runs", help="Queue and manage training runs on the workers.")
    rsub = p.add_subparsers(dest="action", required=True)
    s = rsub.add_parser("submit", help="Queue a run; prints its id. Same flags as train.")
    s.add_argument("--config")
    s.add_argument("--name", default=None)
    _add_config_flags(s)
    for a in s._actions:
        if a.dest == "output":
            a.help = "Ignored: the studio gives each run its folder under $GAD_DATA_DIR/runs."
    s.set_defaults(func=cmd_runs)
    for action in ("show", "cancel", "resume"):
        a = rsub.add_parser(action, help=f"{action.capitalize()} run ID.")
        a.add_argument("id", type=int)
        if action == "show":
            a.add_argument("--json", action="store_true")
        a.set_defaults(func=cmd_runs)
    f = rsub.add_parser("fork", help="New run from run ID's checkpoint with edited settings; prints its id.")
    f.add_argument("id", type=int)
    f.add_argument("--step", type=int, default=None, help="Checkpoint step (default: the newest).")
    _add_config_flags(f)
    f.set_defaults(func=cmd_runs)
    rsub.add_parser("list", help="The 50 newest runs.").set_defaults(func=cmd_runs)
    return parser


def main(argv: list[str] | None = None) -> int:
    # ValueError: RunStateError and friends, a state the user can read and fix
    return dispatch(build_parser().parse_args(argv), user_errors=(ValueError,))


if __name__ == "__main__":
    sys.exit(main())
