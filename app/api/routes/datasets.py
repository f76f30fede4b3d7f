"""Datasets: upload (multipart, every format gad.data.examples reads), list, detail, statistics, preview."""

from __future__ import annotations

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from app.api.deps import DB, Can, Ctx, IdPath
from app.api.schemas import ERRORS, DatasetOut, DatasetStats, PromptPage, PromptRow
from app.errors import TooLarge
from app.services import datasets as svc

router = APIRouter(prefix="/api/datasets", tags=["datasets"], responses=ERRORS)
Researcher = Can("datasets")


@router.get("", response_model=list[DatasetOut], summary="Every dataset, newest first")
def list_datasets(_: Researcher, session: DB) -> list[DatasetOut]:
    return [DatasetOut(**svc.dataset_view(session, d)) for d in svc.list_datasets(session)]


@router.post("", response_model=DatasetOut, status_code=201,
             summary="Upload a prompt set (JSONL, JSON, CSV, TSV, Parquet; with or without teacher responses)")
async def upload(ctx: Ctx, user: Researcher, session: DB, file: UploadFile = File(...),
                 name: str | None = Form(None, max_length=200),
                 test_fraction: float = Form(0.0, ge=0.0, lt=1.0,
                                             description="Share of prompts held out as the test split."),
                 seed: int = Form(42)) -> DatasetOut:
    limit = int(ctx.settings.max_upload_mb * 2**20)
    if file.size is not None and file.size > limit:
        raise TooLarge(f"the file is {file.size:,} bytes; the limit is {limit:,} (GAD_MAX_UPLOAD_MB)", field="file")

    def store() -> DatasetOut:  # parsing and inserting a large file must not stall the event loop
        # Starlette spooled the upload to a temporary file: it is copied from there in chunks, never
        # held whole in memory.
        ds = svc.import_upload(session, file.file, file.filename or "upload", max_bytes=limit,
                               scratch=ctx.settings.data_dir / "uploads", name=name, test_fraction=test_fraction,
                               seed=seed, user_id=user.id, max_rows=ctx.settings.max_upload_rows)
        session.commit()
        return DatasetOut(**svc.dataset_view(session, ds))

    return await run_in_threadpool(store)


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
