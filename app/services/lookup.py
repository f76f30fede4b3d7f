"""One row by id, or the studio's NotFound that names what was asked for ("no run with id 7"): the 404 of
every resource, written once."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.orm import Session

from app.errors import NotFound

T = TypeVar("T")


def one(session: Session, model: type[T], row_id: int, what: str) -> T:
    row = session.get(model, row_id)
    if row is None:
        raise NotFound(f"no {what} with id {row_id}")
    return row
