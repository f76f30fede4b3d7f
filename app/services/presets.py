"""Run-settings presets: two built in ("paper defaults", "quick CPU smoke test") and each user's own
saved ones (the `presets` table). A preset holds training settings only: never the student, the
data or the output folder, which belong to one run.

Values are validated by gad's RunConfig (field names and types) before they are stored, so a preset
always loads into the form and never smuggles in a setting the form does not know.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Preset, User
from app.errors import Conflict, InvalidInput, NotFound, as_studio_error
from gad.training.config import PER_RUN  # per-run files and models: never saved in a preset

# Fields that describe one run, not a recipe: never part of a preset.

PAPER_DEFAULTS = "paper defaults"
CPU_SMOKE = "quick CPU smoke test"

# A GAD run of a few steps that finishes in about a minute on a laptop CPU with a tiny model: small
# batches, short responses, learning rates high enough that the curves move, for every method (a SeqKD
# baseline at the paper's 5e-6 would barely move in a few steps).
_SMOKE = {"batch_size": 2, "group_size": 2, "max_new_tokens": 16, "max_prompt_length": 128, "max_examples": 16,
          "warmup_steps": 2, "steps": 4, "disc_only_steps": 1, "save_steps": 2, "sample_every": 1,
          "lr": 1e-4, "disc_lr": 1e-4, "warmup_lr": 1e-4, "seqkd_lr": 1e-4, "dtype": "float32",
          "disc_eval_every": 2, "disc_eval_prompts": 4, "disc_eval_samples": 2}

BUILTIN: dict[str, dict] = {PAPER_DEFAULTS: {}, CPU_SMOKE: _SMOKE}


def _validate(values: dict) -> dict:
    """Known RunConfig fields with valid values; the per-run fields dropped."""
    from gad.training.config import RunConfig, build_config

    values = {k: v for k, v in values.items() if k not in PER_RUN and v is not None}
    unknown = sorted(set(values) - set(RunConfig.model_fields))
    if unknown:
        raise InvalidInput(f"unknown setting(s) in the preset: {', '.join(unknown)}", field=unknown[0])
    try:
        build_config({**values, "student": "org/model", "data": "data.jsonl", "output": "out"}, source="the preset")
    except Exception as err:
        mapped = as_studio_error(err)
        if mapped is None:
            raise
        raise mapped from None
    return values


def list_presets(session: Session, user: User) -> list[dict]:
    """Built-in presets first, then the user's own, by name: [{name, values, builtin}]."""
    own = session.scalars(select(Preset).where(Preset.user_id == user.id).order_by(Preset.name))
    return ([{"name": n, "values": dict(v), "builtin": True} for n, v in BUILTIN.items()]
            + [{"name": p.name, "values": dict(p.config), "builtin": False} for p in own])


def preset_values(session: Session, user: User, name: str) -> dict:
    """The settings a preset changes from the paper's defaults."""
    if name in BUILTIN:
        return dict(BUILTIN[name])
    row = session.scalar(select(Preset).where(Preset.user_id == user.id, Preset.name == name))
    if row is None:
        raise NotFound(f"no preset named {name!r}")
    return dict(row.config)


def save_preset(session: Session, user: User, name: str, values: dict) -> Preset:
    """Save (or overwrite) one of the user's presets; only settings that differ from the defaults are kept."""
    from gad.training.config import RunConfig

    name = (name or "").strip()
    if not name or len(name) > 120:
        raise InvalidInput("preset name: 1-120 characters", field="name")
    if name in BUILTIN:
        raise Conflict(f"{name!r} is a built-in preset; choose another name", field="name")
    values = _validate(values)
    changed = {k: v for k, v in values.items() if v != RunConfig.model_fields[k].default}
    row = session.scalar(select(Preset).where(Preset.user_id == user.id, Preset.name == name))
    if row is None:
        row = Preset(user_id=user.id, name=name, config=changed)
        session.add(row)
    else:
        row.config = changed
    session.flush()
    return row


def delete_preset(session: Session, user: User, name: str) -> None:
    if name in BUILTIN:
        raise Conflict(f"{name!r} is built in and cannot be deleted", field="name")
    row = session.scalar(select(Preset).where(Preset.user_id == user.id, Preset.name == name))
    if row is None:
        raise NotFound(f"no preset named {name!r}")
    session.delete(row)
    session.flush()
