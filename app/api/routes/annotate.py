"""The annotator's queue: open studies, the next blind item, vote, skip, undo. Nothing here names a
model: an annotator sees prompts and two anonymous responses, left and right.

GET next reserves the item it returns (a lease of GAD_LEASE_SECONDS); a vote must be on an item of
the annotator's queue (403 otherwise) and within the item's quota (409 once its reservation expired
and others filled it). Concurrent votes and undos of one study take turns; none answers 500."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import DB, Can, Ctx, IdPath
from app.api.schemas import ERRORS, AnnotatorStudy, BlindItem, VoteIn, VoteOut
from app.services import study_queue as svc

router = APIRouter(prefix="/api/annotate", tags=["annotate"], responses=ERRORS)
Annotator = Can("annotate")


@router.get("", response_model=list[AnnotatorStudy], summary="Studies open for my votes")
def my_studies(user: Annotator, session: DB) -> list[AnnotatorStudy]:
    # A study's name is free text researchers write ("Qwen-GAD vs GPT-4o"): annotators get a neutral title.
    return [AnnotatorStudy(id=s.id, name=f"Study {s.id}", guidelines=s.guidelines,
                           progress=svc.progress(session, s.id, user.id)) for s in svc.open_studies_for(session)]


@router.get("/{study_id}/next", response_model=BlindItem, responses={204: {"description": "Nothing left to vote on"}},
            summary="My next item (blind)")
def next_item(study_id: IdPath, user: Annotator, session: DB, ctx: Ctx):
    item = svc.next_item(session, study_id, user.id, lease_seconds=ctx.settings.lease_seconds)
    session.commit()  # the lease
    return Response(status_code=204) if item is None else BlindItem(**item)


@router.post("/{study_id}/votes", response_model=VoteOut, summary="Vote left/right/tie/both_bad, or skip")
def vote(study_id: IdPath, body: VoteIn, user: Annotator, session: DB) -> VoteOut:
    svc.cast_vote(session, body.item_id, user.id, body.side, study_id=study_id, queue=True)
    session.commit()
    return VoteOut(item_id=body.item_id)


@router.post("/{study_id}/undo", response_model=BlindItem, responses={204: {"description": "No vote to undo"}},
             summary="Take back my last vote; returns that item")
def undo(study_id: IdPath, user: Annotator, session: DB, ctx: Ctx):
    item = svc.undo_last(session, study_id, user.id, lease_seconds=ctx.settings.lease_seconds)
    session.commit()
    return Response(status_code=204) if item is None else BlindItem(**item)
