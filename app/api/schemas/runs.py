"""Training runs: creating and forking them, their state, checkpoints, metrics, samples and logs.

`RunSettings` is generated from gad.training.config.RunConfig: the same fields, help texts and defaults,
so the API, the CLI and the dashboard's form cannot drift apart."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from app.api.schemas.common import DbId, Page
from app.enums import RunStatus
from gad.training.config import RunConfig


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
