"""Study generation on SQLite and PostgreSQL: the left/right draw cannot be computed from ids, and a
NUL character in a model's output is removed (and reported) instead of failing the job."""

from __future__ import annotations

import json
import random

from sqlalchemy import select

from app.db.models import Job, Study, StudyItem
from app.db.session import session_scope
from app.services import studies as study_service
from app.services import study_items
from app.services.datasets import import_dataset
from app.services.jobs import run_study_generation
from app.services.lifecycle import claim_row

N = 32


def _study(ctx, tmp_path, name: str) -> tuple[int, int]:
    data = tmp_path / f"{name}.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"question {i}", "response": f"answer {i}"}) + "\n"
                            for i in range(N)))
    with session_scope(ctx.sessions) as s:
        ds = import_dataset(s, data, test_fraction=0.0)
        study, job = study_service.create_study(s, name=name, model_a={"responses": str(data)},
                                                model_b={"responses": str(data)}, dataset_id=ds.id)
        return study.id, job.id


def _generate(ctx, job_id: int) -> dict:
    with session_scope(ctx.sessions) as s:
        claim = claim_row(s, Job, job_id, "test", 60)
    return run_study_generation(ctx, job_id, claim)


def test_the_blind_sides_are_drawn_from_a_stored_secret_not_the_study_id(studio_ctx, tmp_path):
    ids = [_study(studio_ctx, tmp_path, f"s{i}") for i in range(2)]
    for _, job_id in ids:
        _generate(studio_ctx, job_id)
    with studio_ctx.sessions() as s:
        secrets = []
        for study_id, _ in ids:
            study = s.get(Study, study_id)
            sides = [it.a_on_left for it in s.scalars(select(StudyItem).where(StudyItem.study_id == study_id)
                                                      .order_by(StudyItem.position))]
            guess = random.Random(f"study-{study_id}")            # what an annotator could compute
            assert len(sides) == N and sides != [guess.random() < 0.5 for _ in range(N)]
            replay = random.Random(study.blind_secret)             # the stored secret reproduces the draw
            assert sides == [replay.random() < 0.5 for _ in range(N)]
            assert study.blind_secret not in json.dumps(study_service.study_view(s, study), default=str)
            secrets.append(study.blind_secret)
        assert len(set(secrets)) == 2 and all(len(x) == 64 for x in secrets)


def test_nul_in_a_models_output_is_removed_and_reported(studio_ctx, tmp_path, monkeypatch):
    # Fault injection: the models' answers carry U+0000 (PostgreSQL refuses it in text columns).
    real = study_items._answers
    monkeypatch.setattr(study_items, "_answers",
                        lambda *a, **k: [f"left\x00{t}\x00" for t in real(*a, **k)])
    study_id, job_id = _study(studio_ctx, tmp_path, "nul")
    result = _generate(studio_ctx, job_id)
    assert result["items"] == N and result["nul_removed"] == 4 * N
    with studio_ctx.sessions() as s:
        texts = [t for it in s.scalars(select(StudyItem).where(StudyItem.study_id == study_id))
                 for t in (it.response_a, it.response_b, it.prompt)]
    assert texts and not any("\x00" in t for t in texts) and "leftanswer 0" in texts
