"""Runs through real Celery worker processes: the embedded broker + SQLite, and Redis + PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import sessionmaker

from app.db.models import Checkpoint, Run, RunMetric, RunStep
from tests.conftest import REPO, wait_for
from tests.studio.conftest import Worker, studio_env

pytestmark = pytest.mark.slow


def cli(env, *args, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=180)
    if check:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def train_flags(tiny_model, pairs_file, steps=4, save_steps=2):
    return ["--method", "gad", "--student", str(tiny_model), "--data", str(pairs_file), "--warmup-steps", "2",
            "--steps", str(steps), "--batch-size", "2", "--group-size", "4", "--max-new-tokens", "8",
            "--save-steps", str(save_steps), "--disc-only-steps", "1", "--max-prompt-length", "48"]


@pytest.fixture(params=["embedded", "redis+postgresql"])
def stack(request, tmp_path):
    if request.param == "embedded":
        db, broker = f"sqlite:///{tmp_path / 'data' / 'studio.db'}", None
    else:
        db, broker = request.getfixturevalue("pg_url"), request.getfixturevalue("redis_url")
    env = studio_env(tmp_path / "data", db, broker)
    cli(env, "db", "upgrade")
    engine = create_engine(db)
    sessions = sessionmaker(engine)
    workers: list[Worker] = []

    def start_worker():
        w = Worker(env, tmp_path / "worker.log").start()
        workers.append(w)
        return w

    yield env, sessions, start_worker
    for w in workers:
        w.stop()
    engine.dispose()


def status(sessions, run_id):
    with sessions() as s:
        return s.get(Run, run_id).status


def test_full_life_of_a_run(stack, tiny_model, pairs_file):
    env, sessions, start_worker = stack
    run_id = int(cli(env, "runs", "submit", *train_flags(tiny_model, pairs_file, steps=8)).stdout.split()[-1])
    assert status(sessions, run_id) == "queued"
    start_worker()
    wait_for(lambda: status(sessions, run_id) == "running", what="running")

    def metrics_while_running():
        with sessions() as s:
            n = s.scalar(select(func.count()).select_from(RunStep).where(RunStep.run_id == run_id))
            return n if n and s.get(Run, run_id).status == "running" else 0
    assert wait_for(metrics_while_running, what="metrics arriving during the run") >= 1
    wait_for(lambda: status(sessions, run_id) in ("succeeded", "failed"), what="the end")
    shown = json.loads(cli(env, "runs", "show", str(run_id), "--json").stdout)
    assert shown["status"] == "succeeded", shown["error"]
    assert shown["step"] == 10 and shown["total_steps"] == 10 and shown["progress"] == 1.0
    assert [c["step"] for c in shown["checkpoints"]] == [2, 4, 6, 8, 10]
    assert {"disc_loss", "reward_mean", "kl"} <= set(shown["last_metrics"])
    with sessions() as s:
        steps = s.scalars(select(RunStep.step).where(RunStep.run_id == run_id).order_by(RunStep.step)).all()
        assert steps == list(range(1, 11))
        assert s.get(Run, run_id).attempts == 1

    # fork from checkpoint 4 with an edited setting: a new run, parent recorded, history up to 4 kept
    child = int(cli(env, "runs", "fork", str(run_id), "--step", "4", "--lr", "2e-6").stdout.split()[-1])
    wait_for(lambda: status(sessions, child) in ("succeeded", "failed"), what="the fork's end")
    with sessions() as s:
        run = s.get(Run, child)
        assert run.status == "succeeded", run.error
        assert (run.parent_id, run.parent_step, run.config["lr"]) == (run_id, 4, 2e-6)
        assert run.output_dir != s.get(Run, run_id).output_dir
        steps = s.scalars(select(RunStep.step).where(RunStep.run_id == child).order_by(RunStep.step)).all()
        assert steps == list(range(1, 11))
        ckpts = s.scalars(select(Checkpoint.step).where(Checkpoint.run_id == child).order_by(Checkpoint.step)).all()
        assert ckpts == [2, 4, 6, 8, 10]          # 2: where the forked stage began (its KL reference)


def test_cancel_stops_at_the_next_step_and_keeps_a_checkpoint(stack, tiny_model, pairs_file):
    env, sessions, start_worker = stack
    submitted = cli(env, "runs", "submit", *train_flags(tiny_model, pairs_file, steps=400, save_steps=100))
    run_id = int(submitted.stdout.split()[-1])
    start_worker()

    def step():
        with sessions() as s:
            return s.get(Run, run_id).step
    wait_for(lambda: step() >= 4, what="a few steps")
    assert "cancel requested" in cli(env, "runs", "cancel", str(run_id)).stdout
    wait_for(lambda: status(sessions, run_id) == "cancelled", what="cancelled")
    with sessions() as s:
        run = s.get(Run, run_id)
        ckpts = s.scalars(select(Checkpoint.step).where(Checkpoint.run_id == run_id)).all()
        assert run.step < 402 and max(ckpts) == run.step      # saved where it stopped
    # a cancelled run can be resumed, and a finished one cannot be cancelled again
    assert cli(env, "runs", "cancel", str(run_id), check=False).returncode == 4   # Conflict


def test_worker_killed_mid_run_is_detected_and_resumes_losing_nothing(stack, tiny_model, pairs_file):
    env, sessions, start_worker = stack
    submitted = cli(env, "runs", "submit", *train_flags(tiny_model, pairs_file, steps=28, save_steps=3))
    run_id = int(submitted.stdout.split()[-1])
    worker = start_worker()

    def checkpoint_at_least(n):
        with sessions() as s:
            return (s.scalar(select(func.max(Checkpoint.step)).where(Checkpoint.run_id == run_id)) or 0) >= n
    wait_for(lambda: checkpoint_at_least(6), what="checkpoint 6")
    worker.kill()
    killed_at = time.time()
    # heartbeat timeout is 4 s in these tests; `runs show` reconciles
    wait_for(lambda: json.loads(cli(env, "runs", "show", str(run_id), "--json").stdout)["status"] == "interrupted",
             timeout=30, what="interrupted")
    assert time.time() - killed_at < 4 + 10
    with sessions() as s:
        last_ckpt = s.scalar(select(func.max(Checkpoint.step)).where(Checkpoint.run_id == run_id))
        kept = s.scalars(select(RunStep.step).where(RunStep.run_id == run_id, RunStep.step <= last_ckpt)).all()
        assert kept == list(range(1, last_ckpt + 1))           # nothing lost up to the checkpoint
    cli(env, "runs", "resume", str(run_id))
    start_worker()
    wait_for(lambda: status(sessions, run_id) in ("succeeded", "failed"), timeout=240, what="the resumed end")
    with sessions() as s:
        run = s.get(Run, run_id)
        assert run.status == "succeeded", run.error
        assert run.attempts == 2 and run.step == 30
        steps = s.scalars(select(RunStep.step).where(RunStep.run_id == run_id).order_by(RunStep.step)).all()
        assert steps == list(range(1, 31))                       # each step exactly once
        n_loss = s.scalar(select(func.count()).select_from(RunMetric).where(
            RunMetric.run_id == run_id, RunMetric.name == "disc_loss"))
        assert n_loss == 30


def test_duplicate_delivery_runs_once(stack, tiny_model, pairs_file):
    env, sessions, start_worker = stack
    run_id = int(cli(env, "runs", "submit", *train_flags(tiny_model, pairs_file, steps=2)).stdout.split()[-1])
    from app.settings import Settings
    from worker.celery_app import make_celery

    settings = Settings(GAD_DATA_DIR=env["GAD_DATA_DIR"], DATABASE_URL=env["DATABASE_URL"],
                        CELERY_BROKER_URL=env.get("CELERY_BROKER_URL"))
    app = make_celery(settings)
    for _ in range(2):  # the same task delivered twice more (three in all)
        app.send_task("gad.train_run", args=[run_id], queue="gpu")
    # A marker run queued behind the duplicates: the one solo worker takes the queue in order, so once the
    # marker has been claimed, both duplicates have been consumed (and skipped, or run: what is asserted).
    marker = int(cli(env, "runs", "submit", *train_flags(tiny_model, pairs_file, steps=1)).stdout.split()[-1])
    start_worker()
    wait_for(lambda: status(sessions, marker) in ("succeeded", "failed"), what="the marker run behind the duplicates")
    assert status(sessions, run_id) == "succeeded"
    with sessions() as s:
        assert s.get(Run, run_id).attempts == 1
        steps = s.scalars(select(RunStep.step).where(RunStep.run_id == run_id)).all()
        assert sorted(steps) == list(range(1, 5))
