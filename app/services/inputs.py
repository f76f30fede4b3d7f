"""A run's inputs checked on disk before anything is queued: data files exist, paths are absolute,
a student is a local folder that exists or a well-formed hub id. The worker resolves nothing: it
may run in another folder, or on another machine that mounts the same paths."""

from __future__ import annotations

import re
from pathlib import Path

from app.errors import InvalidInput
from app.settings import Settings

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


def _looks_like_path(value: str) -> bool:
    return value.startswith((".", "/", "~")) or value.count("/") != 1 or "\\" in value


def _path(value: str, field: str) -> Path:
    if "\x00" in value:
        raise InvalidInput(f"{field}: a path cannot hold a NUL character", field=field)
    try:
        return Path(value).expanduser()
    except RuntimeError:  # ~user of a user this machine does not know
        raise InvalidInput(f"{field}: {value!r} names a home folder this machine does not have", field=field) from None


def resolve_file(value: str, field: str) -> str:
    path = _path(value, field)
    if not path.is_file():
        raise InvalidInput(f"{field}: no file at {path.resolve()}", field=field)
    return str(path.resolve())


def resolve_model(value: str, field: str = "student") -> str:
    """A local model folder (made absolute) or a hub id `org/name` (kept as it is)."""
    path = _path(value, field)
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise InvalidInput(f"{field}: {path.resolve()} is not a model folder (no config.json)", field=field)
        return str(path.resolve())
    if _looks_like_path(value) or not HUB_ID.match(value):
        raise InvalidInput(f"{field}: {value!r} is neither an existing model folder nor a hub id like "
                           f"'Qwen/Qwen2.5-0.5B-Instruct'", field=field)
    return value


def resolve_inputs(values: dict, settings: Settings) -> dict:
    out = dict(values)
    out["data"] = resolve_file(values["data"], "data")
    if values.get("teacher_responses"):
        out["teacher_responses"] = resolve_file(values["teacher_responses"], "teacher_responses")
    out["student"] = resolve_model(values["student"])
    return out
