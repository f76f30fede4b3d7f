"""Evaluations: the models and sets to judge, and the judge's scores and samples."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import DbId
from gad.llm.eval_config import BUILTIN_SETS, EvalConfig


class EvalModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=100)
    checkpoint_id: DbId | None = None
    path: str | None = Field(None, description="A model folder or hub id.")
    responses: str | None = Field(None, description="A file of responses to judge as they are.")


class EvaluationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    models: list[EvalModel] = Field(..., min_length=1, max_length=20)
    sets: list[str] = Field(..., min_length=1, description=f"{', '.join(BUILTIN_SETS)}, or dataset:<id>")
    judge_endpoint_id: DbId
    # The generation and judging settings, help texts and defaults: gad.llm.eval_config.EvalConfig's.
    limit: int | None = EvalConfig.model_fields["limit"]
    max_new_tokens: int = EvalConfig.model_fields["max_new_tokens"]
    greedy: bool = EvalConfig.model_fields["greedy"]
    both_orders: bool = EvalConfig.model_fields["both_orders"]
    teacher: str | None = EvalConfig.model_fields["teacher"]
    use_vllm: bool = EvalConfig.model_fields["use_vllm"]
    max_cost_usd: float | None = Field(None, gt=0, description="Cost cap in USD on the judge's spend: the job "
                                                               "pauses when it reaches it (none: no cap).")


class EvaluationRow(BaseModel):
    id: int
    job_id: int | None
    checkpoint_id: int | None
    model: str
    set: str
    score: float | None
    ci_low: float | None
    ci_high: float | None
    length: float | None
    summary: dict[str, Any]


class JudgeSample(BaseModel):
    prompt_id: str
    prompt: str = Field("", description="The prompt (empty when the job's output folder is gone).")
    response: str
    reference: str = Field("", description="The judge's own reference answer (empty when the output is gone).")
    model_score: float | None
    reference_score: float | None
    verdicts: dict[str, Any] | list[Any]
