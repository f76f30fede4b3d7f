"""What the API and the dashboard show of runs: lists, a run's page, alarms, metric series for
charts (downsampled without hiding spikes), rollouts by step, config diffs and the worker log."""

from __future__ import annotations

import re
from datetime import UTC
from pathlib import Path

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.db.models import Checkpoint, Run, RunMetric, Sample, utcnow
from app.enums import RunStatus
from app.errors import InvalidInput
from app.services.model_ids import checkpoint_student, model_id
from gad.training.health import Alarm, run_alarms
from gad.training.metric_catalog import M

ALARM_WINDOW_STEPS = 60
LAST_METRICS = ("loss", M.DISC_LOSS, M.DISC_ACCURACY, M.REWARD_MEAN, "kl", M.STUDENT_LENGTH, M.TEACHER_LENGTH,
                M.DISC_EVAL_ACCURACY, M.DISC_EVAL_IDENTICAL)
# Written every disc_eval_every steps only (gad/training/monitor.py): read the latest value, not the last step's.
SPARSE_METRICS = (M.DISC_EVAL_ACCURACY, M.DISC_EVAL_IDENTICAL)


def list_runs(session: Session, *, status: str | None = None, method: str | None = None, q: str | None = None,
              limit: int = 50, offset: int = 0) -> tuple[list[Run], int]:
    where = []
    if status:
        statuses = [s.strip() for s in status.split(",") if s.strip()]
        bad = [s for s in statuses if s not in RunStatus.__members__]
        if bad:
            raise InvalidInput(f"status: unknown {', '.join(bad)}; one of {', '.join(RunStatus)}", field="status")
        where.append(Run.status.in_(statuses))
    if method:
        where.append(Run.method == method)
    if q:
        like = f"%{q.lower()}%"
        where.append(or_(func.lower(Run.name).like(like), func.lower(Run.method).like(like)))
    total = session.scalar(select(func.count()).select_from(Run).where(*where)) or 0
    runs = list(session.scalars(select(Run).where(*where).order_by(Run.id.desc()).limit(limit).offset(offset)))
    return runs, total


def run_options(session: Session, limit: int = 200) -> list[dict]:
    """Runs for pickers, newest first."""
    return [{"id": r.id, "label": f"#{r.id} {r.name} ({r.status})", "status": r.status}
            for r in session.scalars(select(Run).order_by(Run.id.desc()).limit(limit))]


def checkpoint_options(session: Session) -> list[dict]:
    """Every checkpoint, newest run first: what pickers offer as 'a checkpoint of an earlier run'."""
    rows = session.execute(select(Checkpoint, Run.name, Run.method).join(Run, Run.id == Checkpoint.run_id)
                           .order_by(Checkpoint.run_id.desc(), Checkpoint.step.desc())).all()
    return [{"id": c.id, "run_id": c.run_id, "step": c.step, "stage": c.stage, "student": checkpoint_student(c.path),
             "model_id": model_id(c.run_id, c.step),
             "label": f"{model_id(c.run_id, c.step)} · {name} · {c.stage or method}"} for c, name, method in rows]


def last_metrics(session: Session, run: Run) -> dict[str, float]:
    if not run.step:
        return {}
    rows = session.execute(select(RunMetric.name, RunMetric.value).where(
        RunMetric.run_id == run.id, RunMetric.step == run.step)).all()
    out = {k: v for k, v in rows if v is not None}
    for name in SPARSE_METRICS:
        if name not in out:
            value = session.scalar(select(RunMetric.value).where(
                RunMetric.run_id == run.id, RunMetric.name == name, RunMetric.value.is_not(None))
                .order_by(RunMetric.step.desc()).limit(1))
            if value is not None:
                out[name] = value
    return out


def recent_records(session: Session, run: Run, window: int = ALARM_WINDOW_STEPS) -> list[dict]:
    """The last `window` steps as gad-style records ({step, stage, metric: value}) for the alarms."""
    from app.db.models import RunStep
    from gad.training.health import CHANCE_EVALS

    lo = max(0, run.step - window)
    # The held-out checks are sparse: the at-chance alarm reads the last few wherever they fall.
    checks = session.scalars(select(RunMetric.step).where(
        RunMetric.run_id == run.id, RunMetric.name == M.DISC_EVAL_ACCURACY, RunMetric.value.is_not(None))
        .order_by(RunMetric.step.desc()).limit(CHANCE_EVALS)).all()
    lo = min([lo] + [c - 1 for c in checks])
    steps = dict(session.execute(select(RunStep.step, RunStep.stage).where(RunStep.run_id == run.id,
                                                                            RunStep.step > lo)).all())
    records = {s: {"step": s, "stage": st} for s, st in steps.items()}
    for name, step, value in session.execute(select(RunMetric.name, RunMetric.step, RunMetric.value).where(
            RunMetric.run_id == run.id, RunMetric.step > lo)):
        records.setdefault(step, {"step": step, "stage": None})[name] = value
    return [records[s] for s in sorted(records)]


def alarms(session: Session, run: Run, heartbeat_timeout: float) -> list[Alarm]:
    found = run_alarms(recent_records(session, run))
    if run.status == RunStatus.running and run.heartbeat_at is not None:
        beat = run.heartbeat_at if run.heartbeat_at.tzinfo else run.heartbeat_at.replace(tzinfo=UTC)
        silent = (utcnow() - beat).total_seconds()
        if silent > heartbeat_timeout / 2:
            found.append(Alarm("stalled", f"the worker has sent no heartbeat for {silent:.0f} s; the run is marked "
                                          f"interrupted after {heartbeat_timeout:.0f} s"))
    return found


def run_view(session: Session, run: Run, heartbeat_timeout: float, *, full: bool = True) -> dict:
    total = run.total_steps or 0
    view = {
        "id": run.id, "uid": run.uid, "name": run.name, "method": run.method, "status": run.status,
        "stage": run.stage, "step": run.step, "total_steps": run.total_steps,
        "progress": round(min(1.0, run.step / total), 4) if total else 0.0,
        # An ETA only while something is running: an interrupted or finished run has none.
        "eta_seconds": run.eta_seconds if run.status == RunStatus.running else None,
        "error": run.error, "cancel_requested": run.cancel_requested, "parent_id": run.parent_id,
        "parent_step": run.parent_step, "attempts": run.attempts, "created_at": run.created_at,
        "started_at": run.started_at, "finished_at": run.finished_at, "heartbeat_at": run.heartbeat_at,
        "last_metrics": {k: v for k, v in last_metrics(session, run).items() if k in LAST_METRICS},
        "alarms": [a.as_dict() for a in alarms(session, run, heartbeat_timeout)],
    }
    if full:
        view.update(config=run.config, worker=run.worker, output_dir=run.output_dir,
                    checkpoints=[{"id": c.id, "step": c.step, "stage": c.stage, "created_at": c.created_at,
                                  "model_id": model_id(run.id, c.step)} for c in run.checkpoints])
    return view


def config_warnings(run: Run) -> list[str]:
    """Settings the run's method ignores, and the like (gad's per-method checks, as the form shows them)."""
    from app.services.run_form import stored_config_warnings

    return stored_config_warnings(run.config or {}, f"run {run.id}")


def metric_names(session: Session, run_id: int) -> list[str]:
    return list(session.scalars(select(RunMetric.name).where(RunMetric.run_id == run_id).distinct()
                                .order_by(RunMetric.name)))


def metric_series(session: Session, run_id: int, name: str, start: int | None = None, end: int | None = None,
                  max_points: int = 500) -> list[dict]:
    """One metric as points {step, value, min, max, n}: raw when short, else at most `max_points` buckets
    of consecutive steps, each with its mean and its min/max, so a one-step spike still shows as a band."""
    if max_points < 2:
        raise InvalidInput("max_points must be at least 2", field="max_points")
    where = [RunMetric.run_id == run_id, RunMetric.name == name, RunMetric.value.is_not(None)]
    if start is not None:
        where.append(RunMetric.step >= start)
    if end is not None:
        where.append(RunMetric.step <= end)
    lo, hi, n = session.execute(select(func.min(RunMetric.step), func.max(RunMetric.step), func.count())
                                .where(*where)).one()
    if not n:
        return []
    if n <= max_points:
        return [{"step": s, "value": v, "min": v, "max": v, "n": 1}
                for s, v in session.execute(select(RunMetric.step, RunMetric.value).where(*where)
                                            .order_by(RunMetric.step))]
    width = max(1, -(-(hi - lo + 1) // max_points))
    bucket = (RunMetric.step - lo) // width  # floor division, rendered right for SQLite and PostgreSQL
    rows = session.execute(select(func.min(RunMetric.step), func.avg(RunMetric.value), func.min(RunMetric.value),
                                  func.max(RunMetric.value), func.count()).where(*where)
                           .group_by(bucket).order_by(func.min(RunMetric.step)))
    return [{"step": int(s), "value": float(v), "min": float(mn), "max": float(mx), "n": int(c)}
            for s, v, mn, mx, c in rows]


def metric_table(session: Session, run_id: int, names: list[str] | None = None, start: int | None = None,
                 end: int | None = None, max_points: int = 500) -> dict[str, dict[str, list]]:
    """Several metrics at once, in one query, as columns {name: {step, value, min, max, n}}.

    Every series is cut into the same buckets of steps (the run's step range / max_points), so the
    charts line up; a bucket keeps its mean and its min/max, so a one-step spike still shows."""
    if max_points < 2:
        raise InvalidInput("max_points must be at least 2", field="max_points")
    where = [RunMetric.run_id == run_id, RunMetric.value.is_not(None)]
    if names is not None:
        where.append(RunMetric.name.in_(names))
    if start is not None:
        where.append(RunMetric.step >= start)
    if end is not None:
        where.append(RunMetric.step <= end)
    lo, hi = session.execute(select(func.min(RunMetric.step), func.max(RunMetric.step)).where(*where)).one()
    if lo is None:
        return {}
    width = max(1, -(-(hi - lo + 1) // max_points))
    bucket = (RunMetric.step - lo) // width
    rows = session.execute(select(RunMetric.name, func.min(RunMetric.step), func.avg(RunMetric.value),
                                  func.min(RunMetric.value), func.max(RunMetric.value), func.count())
                           .where(*where).group_by(RunMetric.name, bucket)
                           .order_by(RunMetric.name, func.min(RunMetric.step)))
    out: dict[str, dict[str, list]] = {}
    for name, step, mean, mn, mx, n in rows:
        col = out.setdefault(name, {"step": [], "value": [], "min": [], "max": [], "n": []})
        col["step"].append(int(step))
        col["value"].append(float(mean))
        col["min"].append(float(mn))
        col["max"].append(float(mx))
        col["n"].append(int(n))
    return out


def stage_boundaries(session: Session, run_id: int) -> list[dict]:
    """The first step of each stage, for the dashed lines on the charts."""
    from app.db.models import RunStep

    rows = session.execute(select(RunStep.stage, func.min(RunStep.step)).where(RunStep.run_id == run_id)
                           .group_by(RunStep.stage).order_by(func.min(RunStep.step))).all()
    return [{"stage": st, "step": int(s)} for st, s in rows]


def sample_steps(session: Session, run_id: int) -> list[int]:
    return list(session.scalars(select(Sample.step).where(Sample.run_id == run_id).distinct().order_by(Sample.step)))


def samples_at(session: Session, run_id: int, step: int | None = None) -> list[dict]:
    """Rollouts at `step` (default: the newest step that has some), best and worst marked by D score."""
    if step is None:
        step = session.scalar(select(func.max(Sample.step)).where(Sample.run_id == run_id))
        if step is None:
            return []
    rows = session.scalars(select(Sample).where(Sample.run_id == run_id, Sample.step == step).order_by(Sample.id))
    return [dict(r.payload, step=r.step, stage=r.stage) for r in rows]


def config_diff(a: Run, b: Run) -> list[dict]:
    """Settings that differ between two runs (output folders always do, so they are left out)."""
    keys = sorted((set(a.config) | set(b.config)) - {"output"})
    return [{"field": k, "a": a.config.get(k), "b": b.config.get(k)} for k in keys
            if a.config.get(k) != b.config.get(k)]


def log_tail(run: Run, lines: int = 200) -> list[str]:
    path = Path(run.output_dir) / "worker.log"
    if not path.is_file():
        return []
    with path.open("rb") as fh:  # read only the end of a long log
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - 256 * 1024))
        text = fh.read().decode("utf-8", errors="replace")
    return text.splitlines()[-lines:]


def metrics_after(session: Session, run_id: int, after_step: int, limit: int = 500) -> list[dict]:
    """New steps for the live stream: [{step, stage?, metrics: {name: value}}] with step > after_step."""
    cap = limit * 40
    rows = session.execute(select(RunMetric.step, RunMetric.name, RunMetric.value)
                           .where(RunMetric.run_id == run_id, RunMetric.step > after_step)
                           .order_by(RunMetric.step).limit(cap)).all()
    out: dict[int, dict] = {}
    for step, name, value in rows:
        out.setdefault(step, {"step": step, "metrics": {}})["metrics"][name] = value
    steps = sorted(out)
    if len(rows) == cap and len(steps) > 1:
        steps = steps[:-1]  # the cap may have cut the last step in two: it comes whole next time
    return [out[s] for s in steps[:limit]]


def fork_plan(run: Run, step: int, values: dict | None = None) -> dict:
    """What a fork of `run` at `step` with the parent's settings updated by `values` trains:
    {"total": planned steps in all, "added": steps after the fork point, "steps": a `steps` value that
    makes a fork of a finished run continue training (one more main stage: as many steps as the
    parent's main stage had), "plan": steps per stage}."""
    from gad.training.config import build_config, planned_steps
    from gad.training.fork import _training_prompts

    config = {k: v for k, v in {**run.config, **(values or {})}.items() if v is not None}
    cfg = build_config({**config, "output": "fork"}, source="fork settings")
    n_train = _training_prompts(cfg)
    plan = planned_steps(cfg, n_train)
    total = sum(plan.values())
    parent_plan = planned_steps(build_config({**run.config, "output": "fork"}), n_train)
    parent_total, main = sum(parent_plan.values()), list(parent_plan.values())[-1]  # main: the last stage
    return {"total": total, "added": max(0, total - step), "plan": plan,
            "steps": run.config.get("steps") if parent_total > step else main + step - parent_total + max(main, 1)}


# Chat templates whose turns can be read back from a rendered prompt: (turn pattern, role group, text group).
_TURNS = [
    re.compile(r"<\|im_start\|>(\w+)\n(.*?)(?:<\|im_end\|>|\Z)", re.S),                              # ChatML (Qwen)
    re.compile(r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\n\n(.*?)(?:<\|eot_id\|>|\Z)", re.S),  # Llama 3
]


def prompt_messages(text: str | None) -> list[dict] | None:
    """A prompt as the student saw it (its chat template applied) read back as messages [{role, content}],
    without the empty assistant turn the template opens for the answer; None for an unknown template."""
    if not text:
        return None
    for pattern in _TURNS:
        turns = [{"role": m.group(1), "content": m.group(2).strip()} for m in pattern.finditer(text)]
        if turns:
            if turns[-1]["role"] == "assistant" and not turns[-1]["content"]:
                turns.pop()
            return turns or None
    return None
