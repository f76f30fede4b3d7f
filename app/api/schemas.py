"""Request and response models of the REST API (the OpenAPI schema is generated from these).

`RunSettings` is generated from gad.training.config.RunConfig: the same fields, help texts and defaults,
so the API, the CLI and the dashboard's form cannot drift apart."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from app.enums import JobKind, Role, RunStatus, Side, StudyStatus
from gad.llm.eval_config import BUILTIN_SETS, EvalConfig
from gad.training.config import RunConfig

DbId = Annotated[int, Field(ge=1, le=2**31 - 1)]  # a row id (32-bit in every supported database)


class Problem(BaseModel):
    error: str
    message: str
    field: str | None = None
    where: str | None = None
    errors: list[dict[str, str]] | None = None


# Errors are JSON whatever the route's own media type (CSV exports, event streams).
ERRORS = {code: {"model": Problem, "content": {"application/json": {}}}
          for code in (400, 401, 403, 404, 409, 413, 422, 429)}


def _run_settings_model() -> type[BaseModel]:
    fields = {}
    for name, info in RunConfig.model_fields.items():
        if name == "output":
            continue  # the studio assigns each run its folder
        if name == "data":  # or a dataset_id on the request
            fields[name] = (str | None, Field(None, description=info.description))
            continue
        fields[name] = (info.annotation, info)
    return create_model("RunSettings", __config__=ConfigDict(extra="forbid"), **fields)


RunSettings = _run_settings_model()


class Page(BaseModel):
    total: int
    offset: int
    limit: int


# --- users and auth -------------------------------------------------------------------------
class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    role: Role
    active: bool
    created_at: datetime


class LoginIn(BaseModel):
    username: str = Field(..., max_length=120)
    password: str = Field(..., max_length=1000)


class LoginOut(BaseModel):
    user: UserOut
    csrf_token: str = Field(..., description="Send it back as X-CSRF-Token on state-changing requests "
                                             "authenticated by the session cookie.")


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., max_length=120)
    role: Role = Role.researcher
    password: str = Field(..., min_length=8, max_length=1000)


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    active: bool | None = None
    password: str | None = Field(None, min_length=8, max_length=1000)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("token", max_length=120)


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None = None
    token: str | None = Field(None, description="The token itself: returned once, at creation.")


# --- datasets -------------------------------------------------------------------------------
class Histogram(BaseModel):
    edges: list[int]
    counts: list[int]
    mean: float | None = None
    max: int | None = None


class DatasetOut(BaseModel):
    id: int
    name: str
    source: str | None
    n_prompts: int
    with_response: int
    n_train: int
    n_test: int
    content_hash: str
    created_at: datetime


class DatasetStats(DatasetOut):
    turns: dict[str, int]
    prompt_words: Histogram
    response_words: Histogram


class PromptRow(BaseModel):
    idx: int
    id: str
    split: str
    prompt: str
    messages: list[dict[str, Any]]
    response: str | None


class PromptPage(Page):
    items: list[PromptRow]


# --- endpoints ------------------------------------------------------------------------------
class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=120)
    base_url: str = Field(..., max_length=500, description="OpenAI-compatible base URL, e.g. https://api.openai.com/v1")
    model: str = Field(..., min_length=1, max_length=200)
    api_key: str | None = Field(None, max_length=1000, description="Stored encrypted; never returned.",
                                json_schema_extra={"writeOnly": True})
    key_env_var: str | None = Field(None, max_length=120, description="Or the name of the environment variable "
                                                                      "that holds the key on the workers.")
    params: dict[str, Any] = Field(default_factory=dict, description="Sampling, limits and prices: any field of "
                                                                     "gad.llm.api_client.Endpoint but base_url/model.")

    @field_validator("params")
    @classmethod
    def _known_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        from gad.llm.api_client import ENDPOINT_PARAM_FIELDS

        unknown = sorted(set(value) - set(ENDPOINT_PARAM_FIELDS))
        if unknown:
            raise ValueError(f"unknown endpoint parameter(s) {', '.join(unknown)}; known: "
                             f"{', '.join(ENDPOINT_PARAM_FIELDS)}")
        return value


class EndpointOut(BaseModel):
    id: int
    name: str
    base_url: str
    model: str
    key: str = Field(..., description="How the key is held ('stored (encrypted)', '$VAR' or 'none'); never the key.")
    params: dict[str, Any]
    created_at: datetime


class ConnectionTest(BaseModel):
    ok: bool
    latency_ms: float | None = None
    answer: str | None = None
    error: str | None = None


# --- jobs -----------------------------------------------------------------------------------
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


# --- runs -----------------------------------------------------------------------------------
class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=200)
    dataset_id: DbId | None = Field(None, description="Train on this dataset's teacher responses (instead of data).")
    config: RunSettings  # type: ignore[valid-type]


class RunFork(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: int | None = Field(None, ge=0, le=2**31 - 1,
                             description="Checkpoint step to start from (default: the newest).")
    name: str | None = Field(None, max_length=200)
    overrides: dict[str, Any] = Field(default_factory=dict, description="Edited settings (RunSettings fields).")


class Alarm(BaseModel):
    kind: str
    message: str


class CheckpointOut(BaseModel):
    id: int
    step: int
    stage: str | None
    created_at: datetime
    model_id: str = Field(..., description="Its id under /v1/models.")


class RunOut(BaseModel):
    id: int
    uid: str | None
    name: str
    method: str
    status: RunStatus
    stage: str | None
    step: int
    total_steps: int | None
    progress: float
    eta_seconds: float | None
    error: str | None
    cancel_requested: bool
    parent_id: int | None
    parent_step: int | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    last_metrics: dict[str, float]
    alarms: list[Alarm]


class RunDetail(RunOut):
    config: dict[str, Any]
    worker: str | None
    output_dir: str
    checkpoints: list[CheckpointOut]
    warnings: list[str] = Field(default_factory=list, description="Settings the method ignores, and similar.")


class RunPage(Page):
    items: list[RunOut]


class Series(BaseModel):
    """One metric as columns (compact JSON): bucket start step, mean, min, max and steps per bucket."""
    step: list[int]
    value: list[float]
    min: list[float]
    max: list[float]
    n: list[int]


class MetricsOut(BaseModel):
    run_id: int
    names: list[str]
    bucket_steps: int = Field(..., description="Steps per point (1: raw values).")
    series: dict[str, Series]
    stages: list[dict[str, Any]]


class SamplesOut(BaseModel):
    run_id: int
    steps: list[int]
    step: int | None
    samples: list[dict[str, Any]]


class DiffRow(BaseModel):
    field: str
    a: Any = None
    b: Any = None


class LogOut(BaseModel):
    run_id: int
    lines: list[str]


# --- evaluations ----------------------------------------------------------------------------
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


# --- studies --------------------------------------------------------------------------------
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


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    broker: str
    version: str
