"""The one life of runs and jobs (app/services/lifecycle.py): claim, heartbeat, finish, cancel, queue
again, reconcile through its one committing entry point; training as a service; forks record who made them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from app.db.models import Job, Run, utcnow
from app.db.session import session_scope
from app.enums import RunStatus
from app.errors import Conflict, InvalidInput
from app.services import lifecycle
from app.services import runs as run_service
from app.services.jobs import cancel_job, carry_out_job, create_job, retry_job


def _run(ctx, data) -> int:
    with session_scope(ctx.sessions) as s:
        return run_service.submit_run(s, ctx.settings, {"student": "org/model", "data": str(data)}).id


def _silence(ctx, model, row_id: int) -> None:
    """The row's worker stopped beating long ago (longer than any heartbeat timeout)."""
    with session_scope(ctx.sessions) as s:
        s.execute(update(model).where(model.id == row_id).values(heartbeat_at=utcnow() - timedelta(days=1)))


def test_claim_is_exclusive_and_reconcile_marks_silent_runs(studio_ctx, pairs_file):
    run_id = _run(studio_ctx, pairs_file)
    with studio_ctx.sessions() as s:
        first = lifecycle.claim_row(s, Run, run_id, "w1", stale_after=60)
        assert first and lifecycle.claim_row(s, Run, run_id, "w2", stale_after=60) is None
        assert lifecycle.reconcile(s, heartbeat_timeout=60) == {"runs": [], "jobs": []}
        assert lifecycle.reconcile(s, heartbeat_timeout=-1)["runs"] == [run_id]   # silent "forever"
        assert s.get(Run, run_id).status == RunStatus.interrupted
        assert not lifecycle.beat(s, Run, run_id, first)                          # no longer running
        run_service.resume_run(s, run_id)
        s.commit()
        assert s.get(Run, run_id).claim is None                                   # the old attempt lost it
        assert not lifecycle.finish_row(s, Run, run_id, first, RunStatus.succeeded)
        second = lifecycle.claim_row(s, Run, run_id, "w2", stale_after=60)
        assert second and s.get(Run, run_id).attempts == 2
        assert lifecycle.beat(s, Run, run_id, second) and not lifecycle.beat(s, Run, run_id, first)


def test_reconcile_through_the_one_entry_point_commits_runs_and_jobs_and_is_throttled(studio_ctx, pairs_file):
    run_id = _run(studio_ctx, pairs_file)
    with session_scope(studio_ctx.sessions) as s:
        job_id = create_job(s, "collect", {}).id
        lifecycle.claim_row(s, Run, run_id, "w1", 60)
        lifecycle.claim_row(s, Job, job_id, "w1", 60)
    _silence(studio_ctx, Run, run_id)
    _silence(studio_ctx, Job, job_id)
    assert lifecycle.reconcile_now_and_then(studio_ctx) == {"runs": [run_id], "jobs": [job_id]}
    with studio_ctx.sessions() as s:  # another session sees it: committed
        assert s.get(Run, run_id).status == s.get(Job, job_id).status == RunStatus.interrupted
        assert s.get(Run, run_id).error.startswith(lifecycle.SILENT)
        run_service.resume_run(s, run_id)
        lifecycle.claim_row(s, Run, run_id, "w2", 60)
        s.commit()
    _silence(studio_ctx, Run, run_id)
    # Within half a heartbeat timeout of the last one: a poll is not a database write.
    assert lifecycle.reconcile_now_and_then(studio_ctx) == {"runs": [], "jobs": []}
    with studio_ctx.sessions() as s:
        assert s.get(Run, run_id).status == RunStatus.running
    assert lifecycle.reconcile_now_and_then(studio_ctx, every=0)["runs"] == [run_id]


def test_cancel_and_queue_again_follow_the_status_sets(studio_ctx, pairs_file):
    run_id = _run(studio_ctx, pairs_file)
    with session_scope(studio_ctx.sessions) as s:
        job_id = create_job(s, "collect", {}).id
        lifecycle.claim_row(s, Run, run_id, "w1", 60)
        lifecycle.claim_row(s, Job, job_id, "w1", 60)
    assert RunStatus.running in RunStatus.cancellable() and RunStatus.running not in RunStatus.stops_at_once()
    with session_scope(studio_ctx.sessions) as s:
        run = run_service.cancel_run(s, run_id)            # a running run is asked to stop after its step
        assert run.status == RunStatus.running and run.cancel_requested
        with pytest.raises(Conflict, match="ones can be queued again") as refused:
            run_service.resume_run(s, run_id)
        assert all(str(status) in str(refused.value) for status in RunStatus.resumable())
        with pytest.raises(Conflict, match=f"job {job_id} is already running; only .* ones can be cancelled"):
            cancel_job(s, job_id)                          # a job has no steps: it finishes
    _silence(studio_ctx, Job, job_id)
    lifecycle.reconcile_now_and_then(studio_ctx, every=0)
    with session_scope(studio_ctx.sessions) as s:
        assert cancel_job(s, job_id).status == RunStatus.cancelled
        job = retry_job(s, job_id)
        assert job.status == RunStatus.queued and job.claim is None and job.finished_at is None


def test_an_attempt_that_raises_marks_its_row_failed_and_the_error_propagates(studio_ctx):
    with session_scope(studio_ctx.sessions) as s:
        job_id = create_job(s, "collect", {}).id

    def body(ctx, job_id, claim):
        raise ValueError("the endpoint is gone")

    with pytest.raises(ValueError, match="the endpoint is gone"):
        carry_out_job(studio_ctx, job_id, "w1", body)
    with studio_ctx.sessions() as s:
        job = s.get(Job, job_id)
        assert job.status == RunStatus.failed and job.error == "ValueError: the endpoint is gone" and job.finished_at
    assert carry_out_job(studio_ctx, job_id, "w2", body) == "skipped"  # a failed row is not free until retried


@pytest.mark.slow
def test_the_training_service_trains_a_run_and_a_service_fork_records_who_made_it(studio_ctx, tiny_model, pairs_file):
    from app.db.models import User
    from app.services.training import train_run

    values = dict(method="gad", student=str(tiny_model), data=str(pairs_file), warmup_steps=2, steps=4,
                  batch_size=2, group_size=2, max_new_tokens=6, save_steps=2, disc_only_steps=1,
                  max_prompt_length=48)
    with session_scope(studio_ctx.sessions) as s:
        run_id = run_service.submit_run(s, studio_ctx.settings, values).id
        user = User(name="forker", role="researcher")
        s.add(user)
        s.flush()
        user_id = user.id
    assert train_run(studio_ctx, run_id, "w1") == RunStatus.succeeded
    assert train_run(studio_ctx, run_id, "w1") == "skipped"  # a duplicate delivery of a finished run
    with session_scope(studio_ctx.sessions) as s:
        run = s.get(Run, run_id)
        log = run.output_dir + "/worker.log"
        assert run.status == RunStatus.succeeded and run.attempts == 1 and [c.step for c in run.checkpoints]
        with pytest.raises(InvalidInput, match="unknown setting"):  # the service refuses, for every entry point
            run_service.fork_run(s, studio_ctx.settings, run_id, overrides={"learning_rate": 1}, user_id=user_id)
        with pytest.raises(TypeError):  # an entry point must say who forked
            run_service.fork_run(s, studio_ctx.settings, run_id, overrides={"lr": 2e-4})
        child = run_service.fork_run(s, studio_ctx.settings, run_id, 4, {"lr": 2e-4}, user_id=user_id)
        assert child.created_by == user_id and child.parent_id == run_id
    with open(log) as fh:
        said = fh.read()
    assert "attempt" in said and said.rstrip().endswith("succeeded")
