"""Jobs: teacher collections (launch, watch), every job's progress, failures, tokens and cost, the cost
projection before a launch, and resuming a job paused by its cost cap."""

from __future__ import annotations

from fastapi import APIRouter, Query

from app.api.deps import DB, Can, Ctx, IdPath
from app.api.schemas import ERRORS, CollectCreate, CostProjection, JobOut, JobResume
from app.enums import JobKind
from app.errors import InvalidInput
from app.services import costs
from app.services import jobs as svc

router = APIRouter(prefix="/api/jobs", tags=["jobs"], responses=ERRORS)
Researcher = Can("jobs")


@router.get("", response_model=list[JobOut], summary="Recent jobs, newest first")
def list_jobs(_: Researcher, session: DB, kind: JobKind | None = None,
              limit: int = Query(50, ge=1, le=500)) -> list[JobOut]:
    return [JobOut(**svc.job_view(j)) for j in svc.list_jobs(session, kind, limit)]


@router.post("/collect", response_model=JobOut, status_code=202,
             summary="Collect teacher responses for a dataset from an endpoint")
def collect(body: CollectCreate, ctx: Ctx, user: Researcher, session: DB) -> JobOut:
    job = svc.create_collect_job(session, dataset_id=body.dataset_id, endpoint_id=body.endpoint_id,
                                 retry_failed=body.retry_failed, max_cost_usd=body.max_cost_usd, user_id=user.id)
    session.commit()
    ctx.enqueue(JobKind.collect, job.id)
    return JobOut(**svc.job_view(job))


@router.get("/projection", response_model=CostProjection,
            summary="What a collection or evaluation would send its paid endpoint: requests, tokens, cost")
def projection(ctx: Ctx, _: Researcher, session: DB, kind: JobKind, dataset_id: int | None = Query(None, ge=1),
               endpoint_id: int | None = Query(None, ge=1), retry_failed: bool = False,
               sets: list[str] = Query(default_factory=list), n_models: int = Query(1, ge=1, le=100),
               limit: int | None = Query(None, ge=1), max_new_tokens: int = Query(1536, ge=1),
               both_orders: bool = False) -> CostProjection:
    """collect: dataset_id and endpoint_id. evaluate: endpoint_id (the judge), sets, n_models and the
    evaluation's limit, max_new_tokens and both_orders. study: endpoint_id (its judge, if any), limit (its items)
    and max_new_tokens (its models generate locally: only a judge costs)."""
    if kind == JobKind.study:  # endpoint_id: the study's judge, if any; limit: its number of items
        return CostProjection(**costs.project_study(session, ctx.settings, judge_endpoint_id=endpoint_id,
                                                    n_items=limit or 50, max_new_tokens=min(max_new_tokens, 8192)))
    if endpoint_id is None:
        raise InvalidInput("endpoint_id is required", field="endpoint_id")
    if kind == JobKind.collect:
        if dataset_id is None:
            raise InvalidInput("dataset_id is required", field="dataset_id")
        return CostProjection(**costs.project_collect(session, ctx.settings, dataset_id=dataset_id,
                                                      endpoint_id=endpoint_id, retry_failed=retry_failed))
    if kind == JobKind.evaluate:
        svc.check_sets(session, sets)
        return CostProjection(**costs.project_evaluation(session, ctx.settings, n_models=n_models, sets=sets,
                                                         judge_endpoint_id=endpoint_id, limit=limit,
                                                         max_new_tokens=max_new_tokens, both_orders=both_orders))
    raise InvalidInput(f"no projection for {kind} (training calls no paid endpoint)", field="kind")


@router.get("/{job_id}", response_model=JobOut, summary="A job's live progress and result")
def detail(job_id: IdPath, _: Researcher, session: DB) -> JobOut:
    return JobOut(**svc.job_view(svc.get_job(session, job_id)))


@router.post("/{job_id}/retry", response_model=JobOut, summary="Queue a failed, interrupted or cancelled job again")
def retry(job_id: IdPath, ctx: Ctx, _: Researcher, session: DB) -> JobOut:
    job = svc.retry_job(session, job_id)
    session.commit()
    ctx.enqueue(job.kind, job.id)
    return JobOut(**svc.job_view(job))


@router.post("/{job_id}/resume", response_model=JobOut,
             summary="Queue a paused (or failed, interrupted, cancelled) job again under a new cost cap")
def resume(job_id: IdPath, body: JobResume, ctx: Ctx, _: Researcher, session: DB) -> JobOut:
    job = svc.resume_job(session, job_id, body.max_cost_usd)
    session.commit()
    ctx.enqueue(job.kind, job.id)
    return JobOut(**svc.job_view(job))


@router.post("/{job_id}/cancel", response_model=JobOut, summary="Cancel a queued or interrupted job")
def cancel(job_id: IdPath, _: Researcher, session: DB) -> JobOut:
    job = svc.cancel_job(session, job_id)
    session.commit()
    return JobOut(**svc.job_view(job))
