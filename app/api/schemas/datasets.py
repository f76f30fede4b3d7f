"""Datasets: their summary, statistics and prompt pages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from app.api.schemas.common import Page


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
