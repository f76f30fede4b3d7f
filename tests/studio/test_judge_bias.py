"""The Evaluate page's self-preference warning, at the service level on SQLite: an evaluation whose judge
endpoint is of the same model family as the endpoint that collected the teacher responses (of a dataset it
judges on, or of the dataset its checkpoints were trained on) is warned about; another family is not."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.db.models import Checkpoint, Endpoint, Job, Run
from app.db.session import session_scope
from app.enums import JobKind, RunStatus
from app.services import evaluations as ev_service
from app.services.datasets import import_dataset
from app.services.jobs import create_evaluation_job
from gad.llm.eval_config import BUILTIN_SETS


@pytest.fixture
def db_url(tmp_path):
    return f"sqlite:///{tmp_path / 'studio.db'}"


def _endpoint(s, name: str, model: str) -> int:
    row = Endpoint(name=name, base_url="http://127.0.0.1:9/v1", model=model, params={})
    s.add(row)
    s.flush()
    return row.id


def _world(s, tmp_path) -> dict:
    """A dataset whose teacher responses a gpt endpoint collected, and a checkpoint of a run trained on it."""
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "q", "response": "r"}) + "\n")
    ds = import_dataset(s, data, test_fraction=0.0)
    teacher = _endpoint(s, "teacher", "openai/gpt-4o-mini")
    s.add(Job(kind=JobKind.collect, params={"dataset_id": ds.id, "endpoint_id": teacher}, status=RunStatus.succeeded,
              done=1, total=1))
    run = Run(name="r", method="gad", output_dir=str(tmp_path / "run"),
              config={"data": str(tmp_path / "datasets" / f"dataset-{ds.id}-0123456789abcdef.jsonl")})
    s.add(run)
    s.flush()
    ck = Checkpoint(run_id=run.id, step=10, path=str(tmp_path / "run" / "step-10"))
    s.add(ck)
    s.flush()
    return {"dataset": ds.id, "checkpoint": ck.id, "same": _endpoint(s, "judge-gpt", "gpt-4.1"),
            "other": _endpoint(s, "judge-claude", "claude-3-5-sonnet")}


def test_a_judge_of_the_teachers_family_is_warned_about(studio_ctx, tmp_path):
    with session_scope(studio_ctx.sessions) as s:
        w = _world(s, tmp_path)
        by_set = create_evaluation_job(s, models=[{"name": "m", "path": "some/model"}],
                                       sets=[f"dataset:{w['dataset']}"], judge_endpoint_id=w["same"])
        by_checkpoint = create_evaluation_job(s, models=[{"name": "m", "checkpoint_id": w["checkpoint"]}],
                                              sets=[BUILTIN_SETS[0]], judge_endpoint_id=w["same"])
        other_family = create_evaluation_job(s, models=[{"name": "m", "checkpoint_id": w["checkpoint"]}],
                                             sets=[f"dataset:{w['dataset']}"], judge_endpoint_id=w["other"])
        unrelated = create_evaluation_job(s, models=[{"name": "m", "path": "some/model"}], sets=[BUILTIN_SETS[0]],
                                          judge_endpoint_id=w["same"])
        for job in (by_set, by_checkpoint):
            (warning,) = ev_service.job_warnings(s, job)
            assert "gpt-4.1" in warning and "openai/gpt-4o-mini" in warning and "gpt models" in warning
        assert ev_service.job_warnings(s, other_family) == []
        assert ev_service.job_warnings(s, unrelated) == []   # no studio dataset behind it: no teacher known


def test_a_collection_that_collected_nothing_names_no_teacher(studio_ctx, tmp_path):
    with session_scope(studio_ctx.sessions) as s:
        w = _world(s, tmp_path)
        for job in s.scalars(select(Job).where(Job.kind == JobKind.collect)):
            job.status, job.done = RunStatus.failed, 0
        s.flush()
        assert ev_service.teacher_models(s, w["dataset"]) == []
