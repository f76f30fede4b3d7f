"""Human-evaluation studies, the researcher's side: create (with an optional judge and its cost cap), review
leaks, open/close, results, export. A study's job (its items, then its judge's verdicts) is watched, and
resumed under a raised cap once paused by it, through /api/jobs/{job_id}."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from app.api.deps import DB, Can, Ctx, IdPath
from app.api.schemas import ERRORS, LeakReview, StudyCreate, StudyCreated, StudyOut, StudyResults, StudyStatusIn
from app.enums import JobKind
from app.services import studies as svc
from app.services import study_results

router = APIRouter(prefix="/api/studies", tags=["studies"], responses=ERRORS)
Researcher = Can("studies")


@router.get("", response_model=list[StudyOut], summary="Every study")
def list_studies(_: Researcher, session: DB) -> list[StudyOut]:
    return [StudyOut(**svc.study_view(session, s)) for s in svc.list_studies(session)]


@router.post("", response_model=StudyCreated, status_code=202,
             summary="Create a study; both models answer its prompts in a job")
def create(body: StudyCreate, ctx: Ctx, user: Researcher, session: DB) -> StudyCreated:
    study, job = svc.create_study(session, name=body.name, model_a=body.model_a.model_dump(),
                                  model_b=body.model_b.model_dump(), dataset_id=body.dataset_id, n_items=body.n_items,
                                  annotators_per_item=body.annotators_per_item, guidelines=body.guidelines,
                                  max_new_tokens=body.max_new_tokens, seed=body.seed, user_id=user.id,
                                  judge_endpoint_id=body.judge_endpoint_id, queue_order=body.queue_order,
                                  max_cost_usd=body.max_cost_usd)
    session.commit()
    ctx.enqueue(JobKind.study, job.id)
    return StudyCreated(study=StudyOut(**svc.study_view(session, study)), job_id=job.id)


@router.get("/{study_id}", response_model=StudyOut, summary="A study")
def detail(study_id: IdPath, _: Researcher, session: DB) -> StudyOut:
    return StudyOut(**svc.study_view(session, svc.get_study(session, study_id)))


@router.get("/{study_id}/flagged", summary="Items whose responses give their model away")
def flagged(study_id: IdPath, _: Researcher, session: DB) -> list[dict]:
    svc.get_study(session, study_id)
    return svc.flagged_items(session, study_id)


@router.post("/{study_id}/review", response_model=StudyOut, summary="Drop or keep the flagged items; opens the study")
def review(study_id: IdPath, body: LeakReview, _: Researcher, session: DB) -> StudyOut:
    study = svc.review_leaks(session, study_id, body.drop)
    session.commit()
    return StudyOut(**svc.study_view(session, study))


@router.post("/{study_id}/status", response_model=StudyOut, summary="Open or close a study")
def set_status(study_id: IdPath, body: StudyStatusIn, _: Researcher, session: DB) -> StudyOut:
    study = svc.set_status(session, study_id, body.status)
    session.commit()
    return StudyOut(**svc.study_view(session, study))


@router.get("/{study_id}/results", response_model=StudyResults,
            summary="Win/tie/loss with 95% intervals, per-annotator counts, Fleiss' kappa")
def results(study_id: IdPath, _: Researcher, session: DB) -> StudyResults:
    return StudyResults(**study_results.study_results(session, study_id))


@router.get("/{study_id}/export", response_class=PlainTextResponse, summary="Every vote, as CSV or JSONL")
def export(study_id: IdPath, _: Researcher, session: DB, format: str = Query("csv", pattern="^(csv|jsonl)$")):
    text = study_results.export_votes(session, study_id, format)
    media = "text/csv" if format == "csv" else "application/x-ndjson"
    return PlainTextResponse(text, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="study-{study_id}.{format}"'})
