"""The new-run form's estimates: GPU memory from gad.training.memory's one model (the same numbers as
the deployment guide's table), and time from the pace of earlier runs of the same student, each with
the assumptions it makes."""

from __future__ import annotations

import statistics
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Prompt, Run, RunMetric
from gad.training.metric_catalog import M

GPU_GB = 80.0  # the GPU the memory estimate assumes: one 80 GB card (A100/H100), DDP, no sharding


def estimate(session: Session, values: dict, dataset_id: int | None) -> dict:
    """{"memory": [lines], "time": [lines]} for the form's settings (markdown lines)."""
    from gad.training.config import ConfigError, build_config

    student = values.get("student") or ""
    try:
        cfg = build_config({**values, "student": student or "org/model", "data": "data.jsonl", "output": "out"})
    except ConfigError:
        return {"memory": ["fix the settings above to get an estimate"], "time": []}
    return {"memory": _memory(cfg, student), "time": _time(session, cfg, student, dataset_id)}


def _memory(cfg, student: str) -> list[str]:
    from gad.training.memory_report import estimate_run
    from gad.training.model_sizes import arch_for_model

    if not student:
        return ["choose a student to estimate its GPU memory"]
    try:
        arch = arch_for_model(student)
    except ValueError as err:  # a folder whose config.json is not a decoder-only transformer's
        return [f"no memory estimate: {err}"]
    if arch is None:
        return ["no memory estimate: the student is neither a local folder with a config.json nor a hub id "
                "naming a known size (e.g. Qwen2.5-1.5B)"]
    e = estimate_run(cfg, arch, gpu_gb=GPU_GB)
    verdict = "fits" if e.fits else "does not fit"
    lines = [f"**~{e.total_gb:.1f} GB** per GPU at peak ({e.peak_phase}) for {_params(arch.params)} parameters: "
             f"{verdict} one {GPU_GB:g} GB GPU",
             " · ".join(f"{i.name} {i.gb:.1f} GB" for i in e.items() if i.gb >= 0.05)]
    lines += [f"problem: {p}" for p in e.problems]
    lines += [f"to fit: {a}" for a in e.advice]
    lines.append("DDP on one GPU; gad.training.memory says what is counted (multi-GPU and sharded set-ups: "
                 "the table in docs/deployment.md)")
    return lines


def _time(session: Session, cfg, student: str, dataset_id: int | None) -> list[str]:
    from gad.training.config import planned_steps

    adversarial = cfg.method in ("gad", "offpolicy")
    n_train = None
    if dataset_id:
        n_train = session.scalar(select(func.count()).select_from(Prompt).where(
            Prompt.dataset_id == dataset_id, Prompt.teacher_response.is_not(None), Prompt.split == "train")) or 0
        if cfg.max_examples:
            n_train = min(n_train, cfg.max_examples)
    steps = planned_steps(cfg, n_train or 1)
    total_steps = sum(steps.values())
    plan = " + ".join(f"{n} {stage}" for stage, n in steps.items() if n)
    timing = [f"{total_steps} steps ({plan})" + ("" if n_train else "; unset step counts assume one step "
                                                                    "(choose a dataset for one epoch)")]
    pace = _pace(session, student, cfg.method)
    mine = cfg.batch_size * (cfg.group_size if adversarial else 1) * cfg.max_new_tokens
    if pace and 0.25 <= mine / max(1, pace[2]) <= 4:  # scaling a pace further than 4x would be a guess
        sec, n_runs, work = pace
        scaled = sec * mine / work
        timing.append(f"**~{_duration(scaled * total_steps)}** at {scaled:.2f} s/step, scaled from {n_runs} earlier "
                      f"run(s) of this student ({sec:.2f} s/step at {work:,} sampled tokens per step)")
    elif pace:
        timing.append(f"earlier runs of this student sampled {pace[2]:,} tokens per step, this one {mine:,}: too "
                      f"different to extrapolate; the run page shows the ETA once it starts")
    else:
        timing.append("no earlier run of this student to time from: the run page shows the ETA once it starts")
    return timing


def _pace(session: Session, student: str, method: str) -> tuple[float, int, int] | None:
    """Median seconds per step of earlier runs of this student and method, and the work per step they did."""
    if not student:
        return None
    runs = [r for r in session.scalars(select(Run).where(Run.method == method).order_by(Run.id.desc()).limit(50))
            if (r.config or {}).get("student") in (student, str(Path(student).expanduser().resolve()))][:5]
    times, works = [], []
    for r in runs:
        vals = list(session.scalars(select(RunMetric.value).where(RunMetric.run_id == r.id,
                                                                  RunMetric.name == M.STEP_TIME)))
        if vals:
            times.append(statistics.median(vals))
            c = r.config
            works.append(c["batch_size"] * (c["group_size"] if method != "seqkd" else 1) * c["max_new_tokens"])
    if not times:
        return None
    return statistics.median(times), len(times), int(statistics.median(works))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _params(n: float) -> str:
    """3.09 B, 494 M, 0.72 M: a count people read at a glance."""
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.0f} M" if n >= 1e7 else f"{n / 1e6:.2f} M"
