"""Users, logins and API tokens."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.enums import Role


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
