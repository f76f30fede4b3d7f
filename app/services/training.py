"""Training a run: what the worker's `train_run` task does, as a service like every other job's body.

The attempt's life (claim, heartbeat, finish succeeded/cancelled/failed, log) is lifecycle.carry_out's,
shared with the jobs; this module adds what training needs: the run's config, dropping what was
logged after the checkpoint it resumes from, gad's pipeline in this process (or a group of processes,
services/group_run.py), the run's worker.log, and ending the distributed state the pipeline set up.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func

from app.db.models import Run, utcnow
from app.db.session import session_scope
from app.enums import RunStatus
from app.services import lifecycle
from app.services import runs as run_service
from app.services.group_run import run_group
from app.services.progress import DbProgress, RunLog


def train_run(ctx, run_id: int, worker: str) -> str:
    """Train run `run_id` as one attempt of `worker`; returns its final status, or "skipped" when the
    run is not free (a duplicate delivery; running elsewhere, finished or cancelled)."""
    with ctx.sessions() as s:
        run = s.get(Run, run_id)
        out_dir = Path(run.output_dir) if run is not None else None
    if out_dir is None:
        return "skipped"  # deleted since it was sent: nothing to claim
    log = RunLog(out_dir / "worker.log")
    return lifecycle.carry_out(ctx, Run, run_id, worker, lambda claim: _train(ctx, run_id, claim, log),
                               say=log.write, started_at=func.coalesce(Run.started_at, utcnow()))


def _train(ctx, run_id: int, claim: str, log: RunLog) -> lifecycle.Outcome:
    from gad.training.distributed import shutdown

    try:
        return lifecycle.Outcome(RunStatus(_train_here(ctx, run_id, claim, log)))
    finally:
        shutdown(barrier=False)  # the next run in this worker process starts from a clean slate


def _train_here(ctx, run_id: int, claim: str, log: RunLog) -> str:
    """Train in this process (or a group of processes it supervises); returns the final status."""
    from gad.training.config import build_config
    from gad.training.pipeline import run as run_pipeline
    from gad.training.rundir import list_checkpoints

    with ctx.sessions() as s:
        cfg = build_config(s.get(Run, run_id).config, source=f"run {run_id}")
    done = list_checkpoints(cfg.output_dir)
    after_step = done[-1][0] if done else 0
    with session_scope(ctx.sessions) as s:
        run_service.forget_after(s, run_id, after_step)
    if done:
        log.write(f"resuming from checkpoint step {after_step}")
    progress = DbProgress(ctx.sessions, run_id, claim, log=log)
    processes = ctx.settings.run_processes()
    if processes > 1:  # a group of processes (accelerate launch), followed through the run folder
        status = run_group(cfg, progress, log, processes=processes, strategy=ctx.settings.launch_strategy,
                           cpu=ctx.settings.launch_cpu, after_step=after_step)
    else:
        result = run_pipeline(cfg, progress)
        status = result.status
        for w in result.warnings:
            log.write(f"warning: {w}")
    return status
