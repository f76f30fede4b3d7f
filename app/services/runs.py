"""Runs: submit, claim, cancel, resume, fork, show, reconcile, and metric series for charts.

State machine:  queued -> running -> succeeded | failed | cancelled
                running -(worker silent > heartbeat timeout)-> interrupted -(resume)-> queued
A worker *claims* a run with one conditional UPDATE, so a task delivered twice runs once.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.db.models import Checkpoint, Run, RunMetric, RunStep, Sample, utcnow
from app.services.claims import claim_row
from app.settings import Settings
from gad.config import build_config

class RunStateError(ValueError):
    """The operation does not fit the run's current state; the message says why."""


def submit_run(session: Session, settings: Settings, values: dict, *, name: str | None = None,
               user_id: int | None = None, parent: Run | None = None, parent_step: int | None = None) -> Run:
    """Validate the config (gad's RunConfig) and create a queued run with its own output folder."""
    values = {k: v for k, v in values.items() if v is not None}
    values.setdefault("output", "pending")
    if not settings.allow_remote_code and values.get("trust_remote_code"):
        raise RunStateError("trust_remote_code is off on this studio; an admin can enable GAD_ALLOW_REMOTE_CODE")
    cfg = build_config(values, source="run settings")
    run = Run(name=name or f"{cfg.method} {Path(cfg.student).name}", method=cfg.method, config={},
              output_dir="", created_by=user_id, parent_id=parent.id if parent else None, parent_step=parent_step)
    session.add(run)
    session.flush()
    out = (settings.runs_dir / f"run-{run.id}").resolve()
    run.output_dir = str(out)
    run.config = build_config({**cfg.model_dump(), "output": str(out)}).model_dump()
    session.flush()
    return run


def get_run(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise RunStateError(f"no run with id {run_id}")
    return run


def claim_run(session: Session, run_id: int, worker: str, stale_after: float) -> str | None:
    """Atomically take a queued run (or a running one whose worker went silent). Returns the claim token."""
    return claim_row(session, Run, run_id, worker, stale_after, attempts=Run.attempts + 1,
                     started_at=func.coalesce(Run.started_at, utcnow()), error=None)


def heartbeat(session: Session, run_id: int, claim: str) -> bool:
    """True while this attempt still holds the run (a resumed run belongs to the new attempt)."""
    res = session.execute(update(Run).where(Run.id == run_id, Run.claim == claim, Run.status == "running")
                          .values(heartbeat_at=utcnow()).execution_options(synchronize_session=False))
    session.commit()
    return res.rowcount == 1


def finish_run(session: Session, run_id: int, claim: str, status: str, error: str | None = None) -> bool:
    res = session.execute(update(Run).where(Run.id == run_id, Run.claim == claim, Run.status == "running")
                          .values(status=status, error=error, finished_at=utcnow(), eta_seconds=None)
                          .execution_options(synchronize_session=False))
    session.commit()
    return res.rowcount == 1


def cancel_run(session: Session, run_id: int) -> Run:
    run = get_run(session, run_id)
    if run.status in ("queued", "interrupted"):
        run.status, run.finished_at = "cancelled", utcnow()
    elif run.status == "running":
        run.cancel_requested = True  # the training loop stops after its next step and keeps a checkpoint
    else:
        raise RunStateError(f"run {run_id} is already {run.status}")
    session.flush()
    return run


def resume_run(session: Session, run_id: int) -> Run:
    run = get_run(session, run_id)
    if run.status not in ("interrupted", "failed", "cancelled"):
        raise RunStateError(f"run {run_id} is {run.status}; only interrupted, failed or cancelled runs resume")
    run.status, run.cancel_requested, run.error, run.finished_at = "queued", False, None, None
    session.flush()
    return run


def fork_run(session: Session, settings: Settings, run_id: int, step: int | None = None,
             overrides: dict | None = None, name: str | None = None) -> Run:
    """A new run that starts from the parent's checkpoint `step` (default: its newest) with edited settings."""
    parent = get_run(session, run_id)
    ckpts = {c.step: c for c in parent.checkpoints}
    if not ckpts:
        raise RunStateError(f"run {run_id} has no checkpoint to fork from")
    step = max(ckpts) if step is None else step
    if step not in ckpts:
        raise RunStateError(f"run {run_id} has no checkpoint at step {step}; it has {sorted(ckpts)}")
    values = {**parent.config, **(overrides or {})}
    values.pop("output", None)
    child = submit_run(session, settings, values, name=name or f"{parent.name} (fork @{step})",
                       user_id=parent.created_by, parent=parent, parent_step=step)
    # The child's folder starts with the parent's checkpoint, so gad resumes from it; history up to
    # the fork point is copied so the child's curves are complete.
    # ... and with the checkpoint where that stage began: it is the stage's KL reference.
    copies = [step]
    earlier = [c for c in ckpts.values() if c.step < step and c.stage != ckpts[step].stage]
    if earlier:
        copies.append(max(earlier, key=lambda c: c.step).step)
    for k in copies:
        shutil.copytree(ckpts[k].path, Path(child.output_dir) / "checkpoints" / f"step-{k}")
        session.add(Checkpoint(run_id=child.id, step=k, stage=ckpts[k].stage,
                               path=str(Path(child.output_dir) / "checkpoints" / f"step-{k}")))
    for model, cols in ((RunStep, ("step", "stage")), (RunMetric, ("name", "step", "value"))):
        rows = session.execute(select(*(getattr(model, c) for c in cols))
                               .where(model.run_id == parent.id, model.step <= step)).all()
        session.add_all(model(run_id=child.id, **dict(zip(cols, r))) for r in rows)
    child.step = step
    session.flush()
    return child


def reconcile(session: Session, heartbeat_timeout: float) -> list[int]:
    """Mark running runs whose worker went silent as interrupted. Returns their ids."""
    stale = utcnow() - timedelta(seconds=heartbeat_timeout)
    ids = list(session.scalars(select(Run.id).where(Run.status == "running", Run.heartbeat_at < stale)))
    if ids:
        session.execute(update(Run).where(Run.id.in_(ids), Run.status == "running", Run.heartbeat_at < stale)
                        .values(status="interrupted", error="worker stopped sending heartbeats; resume to "
                                                            "continue from the last checkpoint")
                        .execution_options(synchronize_session=False))
        session.commit()
    return ids


def forget_after(session: Session, run_id: int, step: int) -> None:
    """Before a resume: drop what was logged after the checkpoint it resumes from."""
    for model in (RunMetric, RunStep, Sample, Checkpoint):
        session.execute(delete(model).where(model.run_id == run_id, model.step > step))
    session.commit()


def metric_series(session: Session, run_id: int, name: str, start: int | None = None, end: int | None = None,
                  max_points: int = 500) -> list[tuple[int, float]]:
    """(step, value) for one metric, averaged into at most `max_points` buckets of steps."""
    where = [RunMetric.run_id == run_id, RunMetric.name == name]
    if start is not None:
        where.append(RunMetric.step >= start)
    if end is not None:
        where.append(RunMetric.step <= end)
    lo, hi, n = session.execute(select(func.min(RunMetric.step), func.max(RunMetric.step), func.count())
                                .where(*where)).one()
    if not n:
        return []
    if n <= max_points:
        return [(s, v) for s, v in session.execute(select(RunMetric.step, RunMetric.value).where(*where)
                                                   .order_by(RunMetric.step))]
    width = max(1, -(-(hi - lo + 1) // max_points))
    bucket = (RunMetric.step - lo) // width  # floor division, rendered right for SQLite and PostgreSQL
    rows = session.execute(select(func.min(RunMetric.step), func.avg(RunMetric.value)).where(*where)
                           .group_by(bucket).order_by(func.min(RunMetric.step)))
    return [(int(s), float(v) if v is not None else None) for s, v in rows]


def run_summary(session: Session, run_id: int) -> dict:
    run = get_run(session, run_id)
    last = session.execute(select(RunMetric.name, RunMetric.value).where(
        RunMetric.run_id == run_id, RunMetric.step == run.step)).all() if run.step else []
    total = run.total_steps or 0
    return {
        "id": run.id, "name": run.name, "method": run.method, "status": run.status, "stage": run.stage,
        "step": run.step, "total_steps": run.total_steps,
        "progress": round(run.step / total, 4) if total else 0.0, "eta_seconds": run.eta_seconds,
        "error": run.error, "cancel_requested": run.cancel_requested, "parent_id": run.parent_id,
        "parent_step": run.parent_step, "worker": run.worker, "attempts": run.attempts,
        "heartbeat_at": run.heartbeat_at.isoformat() if run.heartbeat_at else None,
        "output_dir": run.output_dir, "last_metrics": dict(last),
        "checkpoints": [{"step": c.step, "stage": c.stage, "path": c.path} for c in run.checkpoints],
    }
