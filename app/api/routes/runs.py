"""Runs: create (settings validated by gad's RunConfig), list, detail, cancel, resume, fork, config
diff, metric series, rollouts, worker log, and a live Server-Sent Events stream."""

from __future__ import annotations

import asyncio
import json
import re

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from app.api.deps import DB, Can, Ctx, IdPath, IdQuery
from app.api.schemas import (
    ERRORS,
    DiffRow,
    LogOut,
    MetricsOut,
    RunCreate,
    RunDetail,
    RunFork,
    RunOut,
    RunPage,
    SamplesOut,
)
from app.enums import JobKind, RunStatus
from app.errors import InvalidInput
from app.services import lifecycle
from app.services import run_views as views
from app.services import runs as svc

router = APIRouter(prefix="/api/runs", tags=["runs"], responses=ERRORS)
Researcher = Can("runs")


def _detail(session, ctx, run) -> RunDetail:
    view = views.run_view(session, run, ctx.settings.heartbeat_timeout)
    return RunDetail(**view, warnings=views.config_warnings(run))


@router.get("", response_model=RunPage, summary="Runs, newest first, with filters")
def list_runs(_: Researcher, session: DB, ctx: Ctx, status: str | None = Query(None, description="e.g. running,queued"),
              method: str | None = None, q: str | None = Query(None, max_length=200),
              limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0, le=10**9)) -> RunPage:
    lifecycle.reconcile_now_and_then(ctx)
    runs, total = views.list_runs(session, status=status, method=method, q=q, limit=limit, offset=offset)
    items = [RunOut(**views.run_view(session, r, ctx.settings.heartbeat_timeout, full=False)) for r in runs]
    return RunPage(total=total, offset=offset, limit=limit, items=items)


@router.post("", response_model=RunDetail, status_code=201, summary="Queue a run")
def create(body: RunCreate, ctx: Ctx, user: Researcher, session: DB) -> RunDetail:
    values = body.config.model_dump(exclude_unset=True)
    if body.dataset_id is not None:
        run = svc.submit_from_dataset(session, ctx.settings, values, body.dataset_id, name=body.name, user_id=user.id)
    elif values.get("data"):
        run = svc.submit_run(session, ctx.settings, values, name=body.name, user_id=user.id)
    else:
        raise InvalidInput("give a dataset_id, or config.data (a file on the workers' disk)", field="dataset_id")
    session.commit()
    ctx.enqueue(JobKind.train, run.id)
    return _detail(session, ctx, run)


@router.get("/diff", response_model=list[DiffRow], summary="Settings that differ between two runs")
def diff(a: IdQuery, b: IdQuery, _: Researcher, session: DB) -> list[DiffRow]:
    return [DiffRow(**d) for d in views.config_diff(svc.get_run(session, a), svc.get_run(session, b))]


@router.get("/{run_id}", response_model=RunDetail, summary="A run: progress, ETA, alarms, checkpoints")
def detail(run_id: IdPath, ctx: Ctx, _: Researcher, session: DB) -> RunDetail:
    lifecycle.reconcile_now_and_then(ctx)
    return _detail(session, ctx, svc.get_run(session, run_id))


@router.post("/{run_id}/cancel", response_model=RunDetail, summary="Cancel (a running run stops after its step)")
def cancel(run_id: IdPath, ctx: Ctx, _: Researcher, session: DB) -> RunDetail:
    run = svc.cancel_run(session, run_id)
    session.commit()
    return _detail(session, ctx, run)


@router.post("/{run_id}/resume", response_model=RunDetail, summary="Resume from the last checkpoint")
def resume(run_id: IdPath, ctx: Ctx, _: Researcher, session: DB) -> RunDetail:
    lifecycle.reconcile_now_and_then(ctx)
    run = svc.resume_run(session, run_id)
    session.commit()
    ctx.enqueue(JobKind.train, run.id)
    return _detail(session, ctx, run)


@router.post("/{run_id}/fork", response_model=RunDetail, status_code=201,
             summary="A new run from a checkpoint, with edited settings")
def fork(run_id: IdPath, body: RunFork, ctx: Ctx, user: Researcher, session: DB) -> RunDetail:
    child = svc.fork_run(session, ctx.settings, run_id, body.step, body.overrides, body.name, user_id=user.id)
    session.commit()
    ctx.enqueue(JobKind.train, child.id)
    return _detail(session, ctx, child)


@router.get("/{run_id}/metrics", response_model=MetricsOut,
            summary="Metric series as columns, at most max_points per series (min/max kept per bucket)")
def metrics(run_id: IdPath, request: Request, _: Researcher, session: DB,
            names: str | None = Query(None, max_length=4000, description="Comma-separated; default: all"),
            start: int | None = Query(None, ge=0, le=10**9), end: int | None = Query(None, ge=0, le=10**9),
            max_points: int = Query(500, ge=2, le=5000)) -> Response:
    run = svc.get_run(session, run_id)
    wanted = tuple(sorted({n.strip() for n in names.split(",") if n.strip()})) if names else None
    # A run's metrics change only when its step does (resume and fork rewrite the step too), so the
    # answer is cached by it: several people watching one run cost one query per step.
    key = (run_id, run.step, run.status, wanted, start, end, max_points)
    cache = request.app.state.metrics_cache
    body = cache.get(key)
    if body is None:
        table = views.metric_table(session, run_id, list(wanted) if wanted else None, start, end, max_points)
        width = max((max(c["n"]) for c in table.values()), default=1)
        # Plain numbers straight to JSON: re-validating ~15,000 floats per request would dominate the route.
        body = json.dumps({"run_id": run_id, "names": views.metric_names(session, run_id), "bucket_steps": width,
                           "series": table, "stages": views.stage_boundaries(session, run_id)}).encode()
        cache.put(key, body)
    return Response(body, media_type="application/json")


@router.get("/{run_id}/samples", response_model=SamplesOut, summary="Rollouts at a step (default: the newest)")
def samples(run_id: IdPath, _: Researcher, session: DB, step: int | None = Query(None, ge=0, le=10**9)) -> SamplesOut:
    svc.get_run(session, run_id)
    steps = views.sample_steps(session, run_id)
    chosen = step if step is not None else (steps[-1] if steps else None)
    return SamplesOut(run_id=run_id, steps=steps, step=chosen,
                      samples=views.samples_at(session, run_id, chosen) if chosen is not None else [])


@router.get("/{run_id}/log", response_model=LogOut, summary="The tail of the worker's log for this run")
def log(run_id: IdPath, _: Researcher, session: DB, lines: int = Query(200, ge=1, le=5000)) -> LogOut:
    return LogOut(run_id=run_id, lines=views.log_tail(svc.get_run(session, run_id), lines))


@router.get("/{run_id}/events", summary="Live metrics and status (text/event-stream; resumes with Last-Event-ID)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}})
async def events(run_id: IdPath, request: Request, ctx: Ctx, _: Researcher, session: DB,
                 last_event_id: str | None = Header(None, alias="Last-Event-ID"),
                 poll: float = Query(0.5, ge=0.1, le=10.0)) -> StreamingResponse:
    """Each new step is one event (`id` = its step, `event: metrics`); `event: status` when the run's
    status, stage or step changes; the stream ends after the run finishes. A client that reconnects
    with Last-Event-ID gets the steps after it, so nothing is missed or repeated."""
    svc.get_run(session, run_id)
    session.close()  # the stream opens its own short sessions; don't hold one for minutes
    if last_event_id and not re.fullmatch(r"[0-9]{1,9}", last_event_id.strip()):
        raise InvalidInput("Last-Event-ID must be a step number", field="Last-Event-ID")
    after = int(last_event_id) if last_event_id else 0

    def snapshot(after_step: int):
        with ctx.sessions() as s:
            run = svc.get_run(s, run_id)
            return views.metrics_after(s, run_id, after_step), {
                "status": run.status, "stage": run.stage, "step": run.step, "total_steps": run.total_steps,
                "eta_seconds": run.eta_seconds if run.status == RunStatus.running else None, "error": run.error}

    async def stream():
        nonlocal after
        last_status = None
        yield "retry: 2000\n\n"
        while True:
            steps, status = await run_in_threadpool(snapshot, after)
            for row in steps:
                after = row["step"]
                yield f"id: {after}\nevent: metrics\ndata: {json.dumps(row)}\n\n"
            if status != last_status:
                last_status = status
                yield f"event: status\ndata: {json.dumps(status)}\n\n"
            if status["status"] in RunStatus.finished() and not steps:
                yield "event: end\ndata: {}\n\n"
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(poll)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
