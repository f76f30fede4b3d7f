"""Human preference studies: creating and reviewing them, the annotator's blind items and votes, results."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import DbId
from app.enums import Side, StudyStatus


class StudyModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str | None = Field(None, max_length=100, description="Shown to researchers only, never to annotators.")
    checkpoint_id: DbId | None = None
    path: str | None = None
    responses: str | None = None


class StudyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=200)
    model_a: StudyModel
    model_b: StudyModel
    dataset_id: DbId
    n_items: int | None = Field(None, gt=0, le=10000)
    annotators_per_item: int = Field(1, ge=1, le=20)
    guidelines: str = Field("", max_length=20000)
    max_new_tokens: int = Field(256, gt=0, le=8192)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    judge_endpoint_id: DbId | None = Field(None, description="An LLM judge that rates every item in both orders "
                                                              "when the items are built (active annotation).")
    queue_order: Literal["standard", "disagreement"] = Field(
        "standard", description="standard: items with the fewest votes first; disagreement: first the items where "
                                "the judge's two orders, or the judge and the annotators, disagree (needs a judge).")
    max_cost_usd: float | None = Field(None, gt=0, description="Cost cap in USD on the judge's spend: the study's "
                                                               "job pauses before a verdict that could pass it "
                                                               "(resume it with a raised cap: POST /api/jobs/"
                                                               "{job_id}/resume). Needs a judge; none: no cap.")


class StudyOut(BaseModel):
    id: int
    name: str
    status: StudyStatus
    dataset_id: DbId | None
    model_a: str
    model_b: str
    items: int
    flagged: int
    annotators_per_item: int
    guidelines: str
    created_at: datetime


class StudyCreated(BaseModel):
    study: StudyOut
    job_id: int


class LeakReview(BaseModel):
    model_config = ConfigDict(extra="forbid")
    drop: bool = Field(..., description="True: drop the flagged items; False: keep them.")


class StudyStatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["open", "closed"]


class AnnotatorStudy(BaseModel):
    id: int
    name: str
    guidelines: str
    progress: dict[str, int]


class BlindItem(BaseModel):
    """All an annotator ever sees of an item: no model names, no ids of runs."""
    item_id: DbId
    study_id: int
    prompt: str
    left: str
    right: str
    progress: dict[str, int]
    guidelines: str


class VoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: DbId
    side: Side


class VoteOut(BaseModel):
    item_id: DbId
    recorded: bool = True


class StudyResults(BaseModel):
    study_id: int
    model_a: str
    model_b: str
    win: int
    tie: int
    loss: int
    votes: int
    both_bad: int
    skipped: int
    win_rate: float | None
    tie_rate: float | None
    loss_rate: float | None
    win_ci: list[float] | None
    tie_ci: list[float] | None
    loss_ci: list[float] | None
    judge: dict | None = Field(None, description="With a study judge: how often its two orders disagree, and how "
                                                 "often it disagrees with the annotators' majority.")
    annotators: list[dict[str, Any]]
    agreement: dict[str, Any]
