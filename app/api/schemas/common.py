"""What every resource shares: row ids, the error body (`Problem`, `ERRORS` for route `responses=`), the
page envelope, and the health check."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

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


class Page(BaseModel):
    total: int
    offset: int
    limit: int


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    broker: str
    version: str
