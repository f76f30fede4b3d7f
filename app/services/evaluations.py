"""Evaluation results: the evaluation jobs, score rows (model x set) as the API and the Evaluate page
show them, the best model within a length range (gad.llm.metrics' selection), and the judge's
per-sample answers with the prompt and the judge's reference read back from the job's output."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Checkpoint, Endpoint, Evaluation, Job, JudgeScore, Run
from app.enums import JobKind, RunStatus
from app.services.lookup import one
from app.services.runs import dataset_of_run
from gad.llm.judge import self_preference_warning
from gad.llm.metrics import best_in_length_range, length_range, model_means


def evaluation_jobs(session: Session, limit: int = 50) -> list[Job]:
    """Evaluation jobs, newest first."""
    return list(session.scalars(select(Job).where(Job.kind == JobKind.evaluate).order_by(Job.id.desc()).limit(limit)))


def row_view(e: Evaluation) -> dict:
    """One score row: a model on a set (the fields of the API's EvaluationRow)."""
    return {"id": e.id, "job_id": e.job_id, "checkpoint_id": e.checkpoint_id, "model": e.model_name,
            "set": e.set_name, "score": e.score, "ci_low": e.ci_low, "ci_high": e.ci_high, "length": e.length,
            "summary": e.summary or {}}


def list_rows(session: Session, *, job_id: int | None = None, checkpoint_id: int | None = None,
              limit: int = 200) -> list[dict]:
    """Score rows, newest first."""
    q = select(Evaluation).order_by(Evaluation.id.desc()).limit(limit)
    if job_id is not None:
        q = q.where(Evaluation.job_id == job_id)
    if checkpoint_id is not None:
        q = q.where(Evaluation.checkpoint_id == checkpoint_id)
    return [row_view(e) for e in session.scalars(q)]


def job_rows(session: Session, job_id: int) -> list[dict]:
    """One job's score rows in the order it wrote them (models, then sets, as it was asked)."""
    return list(reversed(list_rows(session, job_id=job_id, limit=10_000)))


def default_length_range(rows: list[dict], teacher: str | None) -> tuple[float, float]:
    """The paper's guard against the judge's length bias (gad.llm.metrics.length_range around the
    teacher's mean length); without a teacher row, every length shown."""
    t_len = [r["length"] for r in rows if r["model"] == teacher and r["length"] is not None]
    if t_len:
        return length_range(statistics.fmean(t_len))
    lengths = [r["length"] for r in rows if r["length"] is not None]
    return 0.0, max(lengths or [0.0]) * 1.25 + 1


def best_in_range(rows: list[dict], lo: float, hi: float, exclude: str | None = None) -> dict | None:
    """The model with the best mean score over its sets among those whose mean length lies in [lo, hi]
    (the selection gad.llm.evaluate makes, over a range the user may move), with "tied": the models
    equal to it at the precision scores are shown with (one decimal), of which no one is "best"."""
    means = model_means(rows, exclude=exclude)
    best = best_in_length_range(means, lo, hi)
    if best is None:
        return None
    eligible = [m for m in means if lo <= m["length"] <= hi]
    return {**best, "tied": [m["model"] for m in eligible if round(m["score"], 1) == round(best["score"], 1)]}


def teacher_models(session: Session, dataset_id: int) -> list[str]:
    """The models of the endpoints whose answers are a dataset's teacher responses (its collections that
    collected something)."""
    ids = {(j.params or {}).get("endpoint_id") for j in session.scalars(select(Job).where(Job.kind == JobKind.collect))
           if (j.params or {}).get("dataset_id") == dataset_id and (j.done or j.status == RunStatus.succeeded)}
    return sorted({e.model for e in session.scalars(select(Endpoint).where(Endpoint.id.in_(ids - {None})))})


def evaluation_datasets(session: Session, models: list[dict], sets: list[str]) -> set[int]:
    """The studio datasets behind an evaluation: uploaded sets it judges on, and the datasets its checkpoints'
    runs were trained on."""
    found = {int(s[8:]) for s in sets if s.startswith("dataset:")}
    for m in models:
        ck = session.get(Checkpoint, m["checkpoint_id"]) if m.get("checkpoint_id") is not None else None
        run = session.get(Run, ck.run_id) if ck is not None else None
        dataset_id = dataset_of_run(run) if run is not None else None
        if dataset_id is not None:
            found.add(dataset_id)
    return found


def self_preference_warnings(session: Session, judge_endpoint_id: int | None, models: list[dict],
                             sets: list[str]) -> list[str]:
    """gad.llm.judge's self-preference warning for each teacher endpoint behind the evaluation whose model is of
    the judge endpoint's family (a judge rates its own family's style higher, so the best imitator wins)."""
    judge = session.get(Endpoint, judge_endpoint_id) if judge_endpoint_id is not None else None
    if judge is None:
        return []
    out = []
    for ds_id in sorted(evaluation_datasets(session, models, sets)):
        for teacher in teacher_models(session, ds_id):
            warning = self_preference_warning(judge.model, teacher)
            if warning and warning not in out:
                out.append(warning)
    return out


def job_warnings(session: Session, job: Job) -> list[str]:
    """The self-preference warnings of an evaluation job, from its parameters."""
    p = job.params or {}
    return self_preference_warnings(session, p.get("judge_endpoint_id"), p.get("models") or [], p.get("sets") or [])


def judge_samples(session: Session, evaluation_id: int, *, offset: int = 0, limit: int = 50) -> list[dict]:
    """Per-sample verdicts of one (model, set), with the prompt and the judge's reference answer read
    back from the evaluation's samples.jsonl (the database keeps scores and verdicts only)."""
    ev = one(session, Evaluation, evaluation_id, "evaluation")
    extra = _sample_texts(session, ev)
    out = []
    for r in session.scalars(select(JudgeScore).where(JudgeScore.evaluation_id == evaluation_id)
                             .order_by(JudgeScore.id).offset(offset).limit(limit)):
        rec = extra.get(r.prompt_external_id, {})
        out.append({"prompt_id": r.prompt_external_id, "prompt": rec.get("prompt", ""), "response": r.response,
                    "reference": rec.get("reference") or "", "model_score": r.model_score,
                    "reference_score": r.reference_score, "verdicts": r.verdicts or {}})
    return out


def _sample_texts(session: Session, ev: Evaluation) -> dict[str, dict]:
    """The job's samples.jsonl records of this (model, set), by prompt id ({} if the file is gone)."""
    job = session.get(Job, ev.job_id) if ev.job_id else None
    output = (job.result or {}).get("output") if job else None
    path = Path(output) / "samples.jsonl" if output else None
    if path is None or not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            if rec.get("model") == ev.model_name and rec.get("set") == ev.set_name:
                out[str(rec.get("id"))] = rec
    return out
