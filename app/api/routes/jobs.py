"""Jobs: teacher collections (launch, watch), and every job's progress, failures, tokens and cost."""

from __future__ import annotations

from fastapi import APIRouter, Query

from app.api.deps import DB, Can, Ctx, IdPath
from app.api.schemas import ERRORS, CollectCreate, JobOut
from app.enums import JobKind
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
                                 retry_failed=body.retry_failed, user_id=user.id)
    session.commit()
    ctx.enqueue(JobKind.collect, job.id)
    return JobOut(**svc.job_view(job))


@router.get("/{job_id}", response_model=JobOut, summary="A job's live progress and result")
def detail(job_id: IdPath, _: Researcher, session: DB) -> JobOut:
    return JobOut(**svc.job_view(svc.get_job(session, job_id)))


@router.post("/{job_id}/retry", response_model=JobOut, summary="Queue a failed, interrupted or cancelled job again")
def retry(job_id: IdPath, ctx: Ctx, _: Researcher, session: DB) -> JobOut:
    job = svc.retry_job(session, job_id)
    session.commit()
    ctx.enqueue(job.kind, job.id)
    return JobOut(**svc.job_view(job))


@router.post("/{job_id}/cancel", response_model=JobOut, summary="Cancel a queued or interrupted job")
def cancel(job_id: IdPath, _: Researcher, session: DB) -> JobOut:
    job = svc.cancel_job(session, job_id)
    session.commit()
    return JobOut(**svc.job_view(job))
