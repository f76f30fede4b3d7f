"""Datasets: upload (multipart, every format gad.data.examples reads; parsed by a worker job), list, detail,
statistics, preview."""

from __future__ import annotations

import time

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app import errors
from app.api.deps import DB, Can, Ctx, IdPath
from app.api.schemas import ERRORS, DatasetOut, DatasetStats, JobOut, PromptPage, PromptRow
from app.enums import JobKind, RunStatus
from app.errors import TooLarge
from app.services import datasets as svc
from app.services import events, uploads
from app.services import jobs as job_service

router = APIRouter(prefix="/api/datasets", tags=["datasets"], responses=ERRORS)
Researcher = Can("datasets")


@router.get("", response_model=list[DatasetOut], summary="Every dataset, newest first")
def list_datasets(_: Researcher, session: DB) -> list[DatasetOut]:
    return [DatasetOut(**svc.dataset_view(session, d)) for d in svc.list_datasets(session)]


@router.post("", response_model=DatasetOut, status_code=201,
             summary="Upload a prompt set (JSONL, JSON, CSV, TSV, Parquet; with or without teacher responses)",
             responses={202: {"model": JobOut, "description": "Stored; its import job is still working: follow it at "
                                                               "the Location (GET /api/jobs/{id}); its result names "
                                                               "the dataset."}})
async def upload(ctx: Ctx, user: Researcher, session: DB, file: UploadFile = File(...),
                 name: str | None = Form(None, max_length=200),
                 test_fraction: float = Form(0.0, ge=0.0, lt=1.0,
                                             description="Share of prompts held out as the test split."),
                 seed: int = Form(42),
                 wait: float = Query(30.0, ge=0.0, le=300.0,
                                     description="Seconds to wait for the import job: 201 with the dataset (or the "
                                                 "file's error: 413, 422 naming file:line and field) if it ends in "
                                                 "time, else 202 with the job.")) -> DatasetOut | JSONResponse:
    """The server stores the bytes (capped; never parsed here) and an `upload` job on the io queue parses
    and imports them, with progress on the job."""
    limit = int(ctx.settings.max_upload_mb * 2**20)
    if file.size is not None and file.size > limit:
        raise TooLarge(f"the file is {file.size:,} bytes; the limit is {limit:,} (GAD_MAX_UPLOAD_MB)", field="file")

    def store() -> int:  # Starlette spooled the upload to a temporary file: copied from there in chunks
        job = uploads.stash_upload(session, ctx.settings.data_dir / "uploads", file.file, file.filename or "upload",
                                   max_bytes=limit, max_rows=ctx.settings.max_upload_rows, name=name,
                                   test_fraction=test_fraction, seed=seed, user_id=user.id)
        session.commit()
        return job.id

    job_id = await run_in_threadpool(store)
    ctx.enqueue(JobKind.upload, job_id)
    deadline, version = time.monotonic() + wait, None
    while (left := deadline - time.monotonic()) > 0:  # waiting holds no thread and no connection
        version = await events.wait_for_change(ctx.sessions, events.JOB, job_id, version, left)
        if version is None or version[0] in RunStatus.finished():
            break

    def answer() -> DatasetOut | JSONResponse:
        job = job_service.get_job(session, job_id)
        if job.status == RunStatus.succeeded:
            return DatasetOut(**svc.dataset_view(session, svc.get_dataset(session, job.result["dataset_id"])))
        if job.status == RunStatus.failed:
            raise errors.from_dict(job.result or {"message": f"the import failed: {job.error}"})
        return JSONResponse(JobOut(**job_service.job_view(job)).model_dump(mode="json"), status_code=202,
                            headers={"Location": f"/api/jobs/{job_id}", "Retry-After": "2"})

    return await run_in_threadpool(answer)


@router.get("/{dataset_id}", response_model=DatasetStats, summary="A dataset with counts and length histograms")
def detail(dataset_id: IdPath, _: Researcher, session: DB) -> DatasetStats:
    return DatasetStats(**svc.statistics(session, dataset_id))


@router.get("/{dataset_id}/prompts", response_model=PromptPage, summary="A page of its prompts")
def prompts(dataset_id: IdPath, _: Researcher, session: DB, offset: int = Query(0, ge=0, le=10**9),
            limit: int = Query(20, ge=1, le=200), split: str | None = Query(None, pattern="^(train|test)$")
            ) -> PromptPage:
    rows, total = svc.preview(session, dataset_id, offset=offset, limit=limit, split=split)
    return PromptPage(total=total, offset=offset, limit=limit, items=[PromptRow(**r) for r in rows])


@router.delete("/{dataset_id}", status_code=204, summary="Delete a dataset and its prompts")
def delete(dataset_id: IdPath, _: Researcher, session: DB) -> Response:
    svc.delete_dataset(session, dataset_id)
    session.commit()
    return Response(status_code=204)
