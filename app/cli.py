"""`gad-studio` = gad's commands (train, collect, evaluate, toy, ...) + the studio's:

    up                    everything on one machine: database, first admin, demo, a worker, the web server
    serve                 the web server (REST API, /v1, dashboard) on uvicorn
    worker                a Celery worker for the studio's queues
    db upgrade|downgrade|current
    users create|list|set-password|token
    runs submit|list|show|cancel|resume|fork

Settings come from the environment (app/settings.py): DATABASE_URL, CELERY_BROKER_URL,
GAD_DATA_DIR, ... Unset, everything lives under ./data (SQLite database, SQLite broker).
Errors: the studio's hierarchy (app/errors.py) maps to exit codes here, once.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys

from app.enums import JobKind, Role
from gad.cli import _add_config_flags
from gad.cli import build_parser as gad_parser
from gad.cli import dispatch as gad_dispatch


def _context(migrate: bool = True):
    from app.context import make_context

    return make_context(migrate=migrate)


# --- db ----------------------------------------------------------------------------------------
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


# --- serve and worker ----------------------------------------------------------------------
def cmd_serve(ns) -> int:
    import uvicorn

    from app.api import create_app
    from gad.training.progress import quiet_libraries

    quiet_libraries()
    ctx = _context()  # migrates on start, like the worker
    app = create_app(context=ctx, ui=not ns.no_ui)
    print(f"GAD Studio on http://{ns.host}:{ns.port}/ui  "
          f"(API docs: /docs; database {ctx.engine.url.render_as_string()})", flush=True)
    uvicorn.run(app, host=ns.host, port=ns.port, log_level=ns.log_level, lifespan="on")
    return 0


def cmd_up(ns) -> int:
    from app.up import up

    return up(ns.host, ns.port, demo=not ns.no_demo, worker=not ns.no_worker)


def cmd_worker(ns) -> int:
    """Become `python -m worker` (exec, same process id): the worker is its own entry point, so app/
    never imports worker/ code."""
    argv = [sys.executable, "-m", "worker", "--queues", ns.queues, "--pool", ns.pool,
            "--concurrency", str(ns.concurrency), "--loglevel", ns.loglevel]
    if ns.hostname:
        argv += ["--hostname", ns.hostname]
    sys.stdout.flush()
    os.execv(sys.executable, argv)
    return 0  # not reached


# --- users -------------------------------------------------------------------------------------
def _password(ns, prompt: str) -> str:
    """From GAD_ADMIN_PASSWORD (scripted set-ups) or a prompt; never a default."""
    env = os.environ.get("GAD_ADMIN_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        from app.errors import InvalidInput

        raise InvalidInput("no password: set GAD_ADMIN_PASSWORD, or run in a terminal to be asked for one")
    first = getpass.getpass(prompt)
    if getpass.getpass("again: ") != first:
        from app.errors import InvalidInput

        raise InvalidInput("the two passwords differ")
    return first


def cmd_users(ns) -> int:
    from app.db.session import session_scope
    from app.services import users as svc

    ctx = _context()
    with session_scope(ctx.sessions) as s:
        if ns.action == "create":
            user = svc.create_user(s, ns.name, ns.role, _password(ns, f"password for {ns.name}: "))
            print(f"user {user.name} ({user.role}) created")
        elif ns.action == "list":
            for u in svc.list_users(s):
                print(f"{u.id:4d}  {u.name:24s} {u.role:11s} {'active' if u.active else 'inactive'}")
        elif ns.action == "set-password":
            svc.set_password(s, svc.user_by_name(s, ns.name), _password(ns, f"new password for {ns.name}: "))
            print(f"password of {ns.name} changed")
        elif ns.action == "token":
            _, token = svc.create_token(s, svc.user_by_name(s, ns.name), ns.label)
            print(f"API token for {ns.name} (shown once; only its hash is stored):", file=sys.stderr)
            print(token)  # alone on the last line of stdout, for scripts
    return 0


# --- runs --------------------------------------------------------------------------------------
def cmd_runs(ns) -> int:
    from app.db.session import session_scope
    from app.services import run_views as views
    from app.services import runs as svc
    from app.services.lifecycle import reconcile_now_and_then

    ctx = _context()
    if ns.action == "submit":
        from gad.training.config import RunConfig, load_yaml

        values = load_yaml(ns.config) if ns.config else {}
        values.update({k: getattr(ns, k) for k in RunConfig.model_fields if getattr(ns, k, None) is not None})
        with session_scope(ctx.sessions) as s:
            run_id = svc.submit_run(s, ctx.settings, values, name=ns.name).id
        ctx.enqueue(JobKind.train, run_id)
        print(run_id)
        return 0
    reconcile_now_and_then(ctx)
    with session_scope(ctx.sessions) as s:
        if ns.action == "list":
            runs, _ = views.list_runs(s, limit=50)
            for r in runs:
                print(f"{r.id:5d}  {r.status:11s} {r.method:9s} {r.step:6d}/{r.total_steps or 0:<6d} {r.name}")
            return 0
        if ns.action == "cancel":
            run = svc.cancel_run(s, ns.id)
            print(f"run {run.id}: {'cancel requested' if run.status == 'running' else run.status}")
        elif ns.action == "resume":
            svc.resume_run(s, ns.id)
        elif ns.action == "fork":
            overrides = {k: v for k, v in vars(ns).items() if k in svc.config_fields() and v is not None}
            new_id = svc.fork_run(s, ctx.settings, ns.id, ns.step, overrides, ns.name, user_id=None).id
        elif ns.action == "show":
            view = views.run_view(s, svc.get_run(s, ns.id), ctx.settings.heartbeat_timeout)
    if ns.action == "resume":
        ctx.enqueue(JobKind.train, ns.id)
        print(f"run {ns.id}: queued to resume from its last checkpoint")
    elif ns.action == "fork":
        ctx.enqueue(JobKind.train, new_id)
        print(new_id)
    elif ns.action == "show":
        if ns.json:
            print(json.dumps(view, indent=2, default=str))
        else:
            _print_summary(view)
    return 0


def _print_summary(r: dict) -> None:
    pct = f"{100 * r['progress']:.0f}%" if r["total_steps"] else "-"
    eta = f", ETA {r['eta_seconds']:.0f}s" if r.get("eta_seconds") else ""
    print(f"run {r['id']} ({r['name']}): {r['status']}, stage {r['stage'] or '-'}, "
          f"step {r['step']}/{r['total_steps'] or '?'} ({pct}{eta})")
    if r["error"]:
        print(f"  error: {r['error'].splitlines()[0]}")
    if r["last_metrics"]:
        print("  last: " + ", ".join(f"{k} {v:.4g}" for k, v in r["last_metrics"].items()))
    for a in r["alarms"]:
        print(f"  ALARM {a['kind']}: {a['message']}")
    for c in r["checkpoints"]:
        print(f"  checkpoint step {c['step']} ({c['stage']}): {c['model_id']}")
    print(f"  folder: {r['output_dir']}")


FORK_HELP = "New run from run ID's checkpoint with edited settings; prints its id."


def cmd_devserver(ns: argparse.Namespace) -> int:
    from app.devserver import serve

    serve(ns.host, ns.port, ns.latency, ns.faults)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = gad_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))

    p = sub.add_parser("devserver", help="A local OpenAI-compatible server with latency and faults (tests, dry runs).",
                       formatter_class=parser.formatter_class)
    p.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
    p.add_argument("--port", type=int, default=8001, help="Port to listen on.")
    p.add_argument("--latency", type=float, default=0.0, help="Seconds added to every request.")
    p.add_argument("--faults", default=None, help="JSON file of fault rules, e.g. "
                   '[{"match": "boom", "fault": "429", "times": 2}] (see app/devserver.py).')
    p.set_defaults(func=cmd_devserver)

    p = sub.add_parser("up", help="The whole studio in one terminal: database, first admin, demo, worker and web "
                                  "server (SQLite and an embedded broker by default). Ctrl-C stops everything.")
    p.add_argument("--host", default="127.0.0.1", help="Interface to listen on (0.0.0.0: every interface).")
    p.add_argument("--port", type=int, default=8000, help="TCP port.")
    p.add_argument("--no-demo", action="store_true", help="Do not prepare the tiny demo model and prompt set.")
    p.add_argument("--no-worker", action="store_true", help="Web server only (workers run elsewhere).")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("serve", help="Run the web server: REST API, OpenAI-compatible /v1, dashboard at /ui.")
    p.add_argument("--host", default="127.0.0.1", help="Interface to listen on (0.0.0.0: every interface).")
    p.add_argument("--port", type=int, default=8000, help="TCP port.")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level.")
    p.add_argument("--no-ui", action="store_true", help="Serve the API only, without the dashboard.")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("db", help="Database migrations (DATABASE_URL, default SQLite under ./data).")
    p.add_argument("action", choices=["upgrade", "downgrade", "current"],
                   help="upgrade to the newest schema, downgrade, or print the current revision.")
    p.add_argument("--revision", default=None, help="Target revision (default: head for upgrade, base for downgrade).")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("worker", help="Start a Celery worker for the studio's queues.")
    p.add_argument("--queues", default="gpu,io", help="Comma-separated queues: gpu (training), io (API calls).")
    p.add_argument("--pool", default="solo", help="Celery pool; solo runs one job at a time in the worker process.")
    p.add_argument("--concurrency", type=int, default=1, help="Jobs at once (with a pool other than solo).")
    p.add_argument("--loglevel", default="INFO", help="Celery log level (DEBUG, INFO, WARNING, ERROR).")
    p.add_argument("--hostname", default=None, help="Worker name, e.g. gpu1@%%h (default: celery@host).")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("users", help="Users, passwords and API tokens.")
    usub = p.add_subparsers(dest="action", required=True)
    u = usub.add_parser("create", help="Create a user (password from a prompt, or GAD_ADMIN_PASSWORD).")
    u.add_argument("name", help="User name (letters, digits, . _ @ -).")
    u.add_argument("--role", required=True, choices=[r.value for r in Role], help="What the user may do "
                   "(app/auth/policy.py).")
    usub.add_parser("list", help="Every user with role and state.")
    u = usub.add_parser("set-password", help="Set a user's password (prompt, or GAD_ADMIN_PASSWORD).")
    u.add_argument("name", help="User name.")
    u = usub.add_parser("token", help="A new API token, printed once, alone on the last line.")
    u.add_argument("name", help="User name.")
    u.add_argument("--label", default="cli", help="A name to tell the token apart in lists.")
    for a in usub.choices.values():
        a.set_defaults(func=cmd_users)

    p = sub.add_parser("runs", help="Queue and manage training runs on the workers.")
    rsub = p.add_subparsers(dest="action", required=True)
    s = rsub.add_parser("submit", help="Queue a run; prints its id. Same flags as train (--output is assigned).")
    s.add_argument("--config", help="YAML file of settings; flags override it.")
    s.add_argument("--name", default=None, help="A name for the run (default: method and student).")
    _add_config_flags(s)
    _drop_output(s)
    s.set_defaults(func=cmd_runs)
    for action, text in (("show", "A run's status, progress, alarms and checkpoints."),
                         ("cancel", "Cancel a run (a running run stops after its current step, keeping a checkpoint)."),
                         ("resume", "Resume an interrupted, failed or cancelled run from its last checkpoint.")):
        a = rsub.add_parser(action, help=text)
        a.add_argument("id", type=int, help="Run id.")
        if action == "show":
            a.add_argument("--json", action="store_true", help="Print the whole record as JSON.")
        a.set_defaults(func=cmd_runs)
    from gad.training.fork import FORK_HELP as WHAT_CARRIES_OVER

    f = rsub.add_parser("fork", help=FORK_HELP, description=WHAT_CARRIES_OVER,
                        formatter_class=_RawDescription)
    f.add_argument("id", type=int, help="Parent run id.")
    f.add_argument("--step", type=int, default=None, help="Checkpoint step (default: the newest).")
    f.add_argument("--name", default=None, help="A name for the fork.")
    _add_config_flags(f)
    _drop_output(f)
    f.set_defaults(func=cmd_runs)
    rsub.add_parser("list", help="The 50 newest runs.").set_defaults(func=cmd_runs)
    return parser


class _RawDescription(argparse.RawDescriptionHelpFormatter):
    """Keeps the fork's explanation laid out as written (its lists and paragraphs)."""


def _drop_output(parser: argparse.ArgumentParser) -> None:
    """The studio assigns run folders: `--output` is not offered where it would be ignored."""
    for action in list(parser._actions):
        if action.dest == "output":
            parser._remove_action(action)
            for group in parser._action_groups:
                if action in group._group_actions:
                    group._group_actions.remove(action)
            for opt in action.option_strings:
                parser._option_string_actions.pop(opt, None)


def main(argv: list[str] | None = None) -> int:
    from app.errors import as_studio_error

    ns = build_parser().parse_args(argv)
    try:
        return gad_dispatch(ns)
    except Exception as err:
        mapped = as_studio_error(err)  # the studio's errors, and gad's input errors seen as the studio's
        if mapped is None:
            raise  # a bug: keep the traceback
        print(f"error: {mapped.message}", file=sys.stderr)
        return mapped.exit_code


if __name__ == "__main__":
    sys.exit(main())
