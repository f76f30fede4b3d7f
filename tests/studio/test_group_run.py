"""A run that is a group of processes (accelerate launch; two CPU processes here, one per GPU on a
GPU node), supervised by a real worker: metrics, checkpoints and stages reach the database from
the run folder's files, a cancel stops every rank after the same step with a checkpoint kept, and
a resume continues from it with every step recorded exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from app.db.models import Checkpoint, Run, RunStep
from tests.studio.conftest import Worker, studio_env
from tests.studio.test_worker import cli, train_flags, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def group_stack(tmp_path):
    db = f"sqlite:///{tmp_path / 'data' / 'studio.db'}"
    env = {**studio_env(tmp_path / "data", db, None), "GAD_PROCESSES_PER_RUN": "2", "GAD_LAUNCH_CPU": "true",
           "GAD_HEARTBEAT_TIMEOUT": "30"}
    cli(env, "db", "upgrade")
    engine = create_engine(db)
    worker = Worker(env, tmp_path / "worker.log").start()
    yield env, sessionmaker(engine), tmp_path
    worker.stop()
    engine.dispose()


def test_a_two_process_run_is_followed_cancelled_and_resumed(group_stack, tiny_model, pairs_file):
    env, sessions, tmp_path = group_stack
    flags = train_flags(tiny_model, pairs_file, steps=40, save_steps=2)
    run_id = int(cli(env, "runs", "submit", *flags).stdout.split()[-1])

    def run():
        with sessions() as s:
            return s.get(Run, run_id)

    wait_for(lambda: run().step >= 4, timeout=240, what="a few steps of the group")
    assert run().stage == "adversarial" and run().total_steps == 42
    assert "cancel requested" in cli(env, "runs", "cancel", str(run_id)).stdout
    wait_for(lambda: run().status == "cancelled", timeout=240, what="the group to stop")
    stopped = run().step
    with sessions() as s:
        ckpts = s.scalars(select(Checkpoint.step).where(Checkpoint.run_id == run_id)).all()
    assert stopped < 42 and max(ckpts) == stopped                              # every rank stopped there, saved
    folder = Path(run().output_dir)
    assert "launching 2 processes (ddp, cpu)" in (folder / "worker.log").read_text()

    cli(env, "runs", "resume", str(run_id))
    wait_for(lambda: run().status in ("succeeded", "failed"), timeout=400, what="the resumed group to finish")
    assert run().status == "succeeded", run().error
    with sessions() as s:
        steps = s.scalars(select(RunStep.step).where(RunStep.run_id == run_id).order_by(RunStep.step)).all()
    assert steps == list(range(1, 43))                                         # each step exactly once
    result = json.loads((folder / "result.json").read_text())
    sums = result["discriminator_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]                               # both ranks hold the same D
