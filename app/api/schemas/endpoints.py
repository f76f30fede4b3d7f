"""OpenAI-compatible endpoints (teachers, judges) and their connection test."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


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
