"""Evaluations with an LLM judge: launch on built-in or uploaded sets; scores per model and set,
intervals and lengths; per-sample judge answers."""

from __future__ import annotations

from fastapi import APIRouter, Query

from app.api.deps import DB, Can, Ctx, IdPath, IdQuery
from app.api.schemas import ERRORS, EvaluationCreate, EvaluationRow, JobOut, JudgeSample
from app.enums import JobKind
from app.services import evaluations as ev_service
from app.services import jobs as job_service

router = APIRouter(prefix="/api/evaluations", tags=["evaluations"], responses=ERRORS)
Researcher = Can("evaluations")


@router.post("", response_model=JobOut, status_code=202, summary="Launch an evaluation job")
def create(body: EvaluationCreate, ctx: Ctx, user: Researcher, session: DB) -> JobOut:
    job = job_service.create_evaluation_job(
        session, models=[m.model_dump(exclude_none=True) for m in body.models], sets=body.sets,
        judge_endpoint_id=body.judge_endpoint_id, limit=body.limit, max_new_tokens=body.max_new_tokens,
        greedy=body.greedy, both_orders=body.both_orders, teacher=body.teacher, use_vllm=body.use_vllm,
        max_cost_usd=body.max_cost_usd, user_id=user.id)
    session.commit()
    ctx.enqueue(JobKind.evaluate, job.id)
    return JobOut(**job_service.job_view(job))


@router.get("", response_model=list[EvaluationRow], summary="Score rows (model x set), newest first")
def list_rows(_: Researcher, session: DB, job_id: IdQuery | None = None, checkpoint_id: IdQuery | None = None,
              limit: int = Query(200, ge=1, le=2000)) -> list[EvaluationRow]:
    return [EvaluationRow(**r) for r in ev_service.list_rows(session, job_id=job_id, checkpoint_id=checkpoint_id,
                                                              limit=limit)]


@router.get("/{evaluation_id}/samples", response_model=list[JudgeSample], summary="Per-sample judge answers")
def samples(evaluation_id: IdPath, _: Researcher, session: DB, offset: int = Query(0, ge=0, le=10**9),
            limit: int = Query(50, ge=1, le=500)) -> list[JudgeSample]:
    return [JudgeSample(**r) for r in ev_service.judge_samples(session, evaluation_id, offset=offset, limit=limit)]
