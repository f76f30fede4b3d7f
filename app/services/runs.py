"""Runs: submit, cancel, resume, fork (views are in run_views; training one is services/training).

A run lives the life every job does (claim, heartbeat, finish, cancel, queue again, reconcile), written
once in app/services/lifecycle.py; this module adds what only runs have: a config, a folder, forks.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.db.models import Checkpoint, Prompt, Run, RunMetric, RunStep, Sample
from app.errors import Conflict, InvalidInput, as_studio_error
from app.services import lifecycle
from app.services.inputs import resolve_inputs
from app.services.lookup import one
from app.settings import Settings
from gad.training.config import RunConfig, build_config

RunStateError = Conflict  # the operation does not fit the run's current state; the message says why


def submit_run(session: Session, settings: Settings, values: dict, *, name: str | None = None,
               user_id: int | None = None, parent: Run | None = None, parent_step: int | None = None) -> Run:
    """Validate the config (gad's RunConfig), check its inputs exist, and create a queued run.

    Paths are resolved to absolute ones here, against the caller's working folder, because the
    worker that runs it has another one. The run's folder is named by a uid unique beyond this
    database (a data folder outlives databases).
    """
    cfg = _checked_config(settings, values)
    values = resolve_inputs(cfg.model_dump(), settings)
    uid = uuid.uuid4().hex[:12]
    run = Run(uid=uid, name=(name or f"{cfg.method} {Path(cfg.student).name}")[:200], method=cfg.method, config={},
              output_dir="", created_by=user_id, parent_id=parent.id if parent else None, parent_step=parent_step)
    session.add(run)
    session.flush()
    out = (settings.runs_dir / f"run-{run.id}-{uid}").resolve()
    run.output_dir = str(out)
    run.config = build_config({**values, "output": str(out)}).model_dump()
    session.flush()
    return run


def _checked_config(settings: Settings, values: dict) -> RunConfig:
    """The settings as RunConfig, or the StudioError that says what is wrong (nothing is created)."""
    values = {k: v for k, v in values.items() if v is not None}
    values["output"] = "assigned-by-the-studio"
    if not settings.allow_remote_code and values.get("trust_remote_code"):
        raise InvalidInput("trust_remote_code is off on this studio; an admin can enable GAD_ALLOW_REMOTE_CODE",
                           field="trust_remote_code")
    try:
        return build_config(values, source="run settings")
    except Exception as err:
        mapped = as_studio_error(err)
        if mapped is None:
            raise
        raise mapped from None


def _check_trainable(session: Session, dataset_id: int) -> bool:
    """Refuse a dataset with no training prompt that has a teacher response. Returns whether it holds
    out a test split (training then reads the train split only)."""
    from app.services.datasets import get_dataset

    ds = get_dataset(session, dataset_id)
    has_test = session.scalar(select(func.count()).select_from(Prompt).where(
        Prompt.dataset_id == ds.id, Prompt.split == "test")) > 0
    query = select(func.count()).select_from(Prompt).where(Prompt.dataset_id == ds.id,
                                                           Prompt.teacher_response.is_not(None))
    if not session.scalar(query.where(Prompt.split == "train") if has_test else query):
        raise InvalidInput(f"dataset {dataset_id} has no {'training ' if has_test else ''}prompts with teacher "
                           f"responses yet; collect them first", field="dataset_id")
    return has_test


def check_launch(session: Session, settings: Settings, values: dict, *, dataset_id: int | None = None,
                 fork_of: dict | None = None) -> None:
    """Everything a launch (submit_from_dataset) or a fork (fork_run) refuses, checked without creating
    anything: the form's "Before you launch" calls this, so it agrees with the launch. Raises the
    StudioError the launch would raise."""
    if fork_of:
        _checked_config(settings, _fork_values(session, fork_of["run_id"], fork_of.get("step"),
                                               form_fork_overrides(values))[2])
        return
    if dataset_id is None:
        raise InvalidInput("choose the dataset whose teacher responses the student learns from", field="dataset_id")
    if not values.get("student"):
        raise InvalidInput("choose a student model", field="student")
    _check_trainable(session, dataset_id)
    from app.services.inputs import resolve_model

    resolve_model(_checked_config(settings, {**values, "data": "dataset.jsonl"}).student)


def submit_from_dataset(session: Session, settings: Settings, values: dict, dataset_id: int, **kwargs) -> Run:
    """A run that trains on a studio dataset's teacher responses. They are written to a file named by
    their content hash (collections change responses; a run keeps the file it started with), which
    becomes the run's `data`. Prompts the dataset holds out as its test split stay out of training."""
    from app.services.datasets import export_jsonl, get_dataset

    ds = get_dataset(session, dataset_id)
    has_test = _check_trainable(session, ds.id)
    folder = settings.data_dir / "datasets"
    scratch = export_jsonl(session, ds.id, folder / f".dataset-{ds.id}.{uuid.uuid4().hex}.tmp",
                           split="train" if has_test else None)
    path = _content_named(scratch, folder / f"dataset-{ds.id}")
    extra = {}
    if has_test and values.get("method", "gad") != "seqkd":
        # The held-out pairs the discriminator-quality monitor checks D on (gad/training/monitor.py).
        try:
            held = export_jsonl(session, ds.id, folder / f".dataset-{ds.id}.{uuid.uuid4().hex}.tmp", split="test")
            extra["held_out"] = str(_content_named(held, folder / f"dataset-{ds.id}-test"))
        except InvalidInput:  # no test prompt has a teacher response yet: the run says the monitor is off
            pass
    return submit_run(session, settings, {**values, **extra, "data": str(path)}, **kwargs)


# A run trained on a studio dataset reads `<data>/datasets/dataset-<id>-<content hash>.jsonl` (and its
# monitor `dataset-<id>-test-<hash>.jsonl`): the name is written by submit_from_dataset and read back here.
_DATASET_FILE = re.compile(r"dataset-(\d+)-[0-9a-f]{16}\.jsonl$")


def dataset_of_run(run: Run) -> int | None:
    """The studio dataset a run trains on, or None for a run on a file of its own."""
    hit = _DATASET_FILE.search(str((run.config or {}).get("data") or ""))
    return int(hit.group(1)) if hit else None


def _content_named(scratch: Path, stem: Path) -> Path:
    """Rename a written file to `stem-<sha256 prefix>.jsonl`: a run keeps the file it started with."""
    import hashlib

    path = stem.with_name(f"{stem.name}-{hashlib.sha256(scratch.read_bytes()).hexdigest()[:16]}.jsonl")
    scratch.replace(path)
    return path


def get_run(session: Session, run_id: int) -> Run:
    return one(session, Run, run_id, "run")


def cancel_run(session: Session, run_id: int) -> Run:
    """Queued or interrupted: cancelled at once. Running: the loop stops after its step, keeping a
    checkpoint (RunStatus.cancellable())."""
    return lifecycle.cancel(session, Run, run_id, "run")


def resume_run(session: Session, run_id: int) -> Run:
    """Queue an interrupted, failed or cancelled run again; it continues from its last checkpoint."""
    return lifecycle.requeue(session, Run, run_id, "run")


def form_fork_overrides(values: dict) -> dict:
    """The overrides a run form's values make for a fork: a fork keeps its parent's student and data
    (the form shows them, fixed), and a blank field keeps the parent's setting."""
    return {k: v for k, v in values.items() if k not in ("student", "data") and v is not None}


def fork_run(session: Session, settings: Settings, run_id: int, step: int | None = None,
             overrides: dict | None = None, name: str | None = None, *, user_id: int | None) -> Run:
    """A new run that starts from the parent's checkpoint `step` (default: its newest) with edited settings.

    Every entry point (API, dashboard, CLI) forks through here, so all refuse the same forks.
    `user_id` has no default: an entry point says who forked (None only where nobody logs in: the CLI)."""
    parent, step, values = _fork_values(session, run_id, step, overrides)
    from gad.training.fork import prepare_fork  # what carries over: gad.training.fork.FORK_HELP

    child = submit_run(session, settings, values, name=name or f"{parent.name} (fork @{step})",
                       user_id=user_id, parent=parent, parent_step=step)
    # gad fills the child's folder: the checkpoint, the one its stage began at (the KL reference),
    # metrics/samples files up to the fork point, and the marker that makes the child's settings
    # take effect on top of the checkpoint. The database history is copied below.
    for k, stage, path in prepare_fork(parent.output_dir, child.output_dir, step, build_config(child.config),
                                       check=False):
        session.add(Checkpoint(run_id=child.id, step=k, stage=stage, path=str(path)))
    for model, cols in ((RunStep, ("step", "stage")), (RunMetric, ("name", "step", "value"))):
        rows = session.execute(select(*(getattr(model, c) for c in cols))
                               .where(model.run_id == parent.id, model.step <= step)).all()
        session.add_all(model(run_id=child.id, **dict(zip(cols, r))) for r in rows)
    child.step = step
    session.flush()
    return child


def _fork_values(session: Session, run_id: int, step: int | None, overrides: dict | None) -> tuple[Run, int, dict]:
    """(parent, fork step, the child's settings) of a fork that can make sense; refuses one that cannot
    (an unknown setting, no checkpoint at that step, another student or LoRA shape) before any row exists."""
    unknown = set(overrides or {}) - config_fields()
    if unknown:
        raise InvalidInput(f"overrides: unknown setting(s) {', '.join(sorted(unknown))}", field="overrides")
    parent = get_run(session, run_id)
    ckpts = {c.step: c for c in parent.checkpoints}
    if not ckpts:
        raise RunStateError(f"run {run_id} has no checkpoint to fork from")
    step = max(ckpts) if step is None else step
    if step not in ckpts:
        raise RunStateError(f"run {run_id} has no checkpoint at step {step}; it has {sorted(ckpts)}")
    values = {**parent.config, **(overrides or {})}
    values.pop("output", None)
    from gad.training.fork import check_fork

    try:
        check_fork(parent.output_dir, step, build_config({k: v for k, v in values.items() if v is not None}
                                                         | {"output": "fork"}, source="fork settings"))
    except Exception as err:
        mapped = as_studio_error(err)
        if mapped is None:
            raise
        raise mapped from None
    return parent, step, values


def forget_after(session: Session, run_id: int, step: int) -> None:
    """Before a resume: drop what was logged after the checkpoint it resumes from."""
    for model in (RunMetric, RunStep, Sample, Checkpoint):
        session.execute(delete(model).where(model.run_id == run_id, model.step > step))


def config_fields() -> set[str]:
    """The settings a user gives (the studio assigns `output`)."""
    return set(RunConfig.model_fields) - {"output"}
