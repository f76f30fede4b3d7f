"""Jobs (teacher collection and other queued work): creating, resuming, their cost projection and state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import DbId
from app.enums import JobKind, RunStatus


class CollectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset_id: DbId
    endpoint_id: DbId
    retry_failed: bool = Field(False, description="Ask again the prompts that were refused or failed before.")
    max_cost_usd: float | None = Field(None, gt=0, description="Cost cap in USD: the job pauses when its spend "
                                                               "reaches it (none: no cap).")


class JobResume(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_cost_usd: float | None = Field(..., gt=0, description="The new cost cap in USD, above what the job has "
                                                               "spent (null: no cap).")


class CostProjection(BaseModel):
    kind: JobKind
    requests: int = Field(description="Requests that would be sent (cached answers are not).")
    cached: int = Field(description="Requests answered from the cache: they cost nothing.")
    prompt_tokens: int = Field(description="Estimated prompt tokens (characters / 4 + 8 per request).")
    completion_tokens_max: int = Field(description="Upper bound on completion tokens.")
    price_prompt: float = Field(description="USD per million prompt tokens.")
    price_completion: float = Field(description="USD per million completion tokens.")
    cost_prompt_usd: float
    cost_max_usd: float = Field(description="Projected cost with completions at their upper bound.")
    priced: bool = Field(description="False when the endpoint has no known price (the cost shows as 0).")
    assumptions: list[str]


class JobOut(BaseModel):
    id: int
    kind: JobKind
    status: RunStatus
    params: dict[str, Any]
    done: int
    total: int | None
    progress: float
    cost: float
    stats: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    message: str | None = Field(None, description="Why a paused job paused (its spend and its cap).")
    max_cost_usd: float | None = None
    eta_seconds: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
