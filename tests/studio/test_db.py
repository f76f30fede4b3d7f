"""The studio's data layer on SQLite and PostgreSQL (both real)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, func, inspect, select

from app.db import migrate
from app.db.models import Base, Dataset, Endpoint, Job, Prompt, RunMetric, Study, StudyItem, User, Vote
from app.db.session import session_scope
from app.errors import InvalidInput
from app.services import runs as run_service
from app.services.datasets import import_dataset
from app.services.endpoints import create_endpoint, list_endpoints, to_gad
from app.services.study_queue import blind_view, cast_vote
from app.services.study_results import study_results


def _head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_current_head()


def test_migrations_up_and_down(db_url):
    migrate.upgrade(db_url)
    engine = create_engine(db_url)
    tables = set(inspect(engine).get_table_names())
    assert {"runs", "run_metrics", "votes", "teacher_responses", "study_items", "endpoints"} <= tables
    assert migrate.current(db_url) == _head()
    migrate.downgrade(db_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(db_url)
    assert migrate.current(db_url) == _head()
    engine.dispose()


def test_enum_columns_are_constrained_by_the_database(studio_ctx):
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    for sql in ("INSERT INTO users (name, role, created_at, active, failed_logins) "
                "VALUES ('x', 'superuser', CURRENT_TIMESTAMP, true, 0)",
                "INSERT INTO jobs (kind, params, status, done, cost, created_at) "
                "VALUES ('mine_bitcoin', '{}', 'queued', 0, 0, CURRENT_TIMESTAMP)"):
        with studio_ctx.engine.connect() as conn, pytest.raises(IntegrityError):
            conn.execute(text(sql))


def test_migrations_match_the_models(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    migrate.upgrade(db_url)
    engine = create_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], f"models changed without a migration: {diff}"


def _study(s) -> tuple[StudyItem, StudyItem, list[User]]:
    users = [User(name=f"ann{i}", role="annotator") for i in range(3)]
    s.add_all(users)
    study = Study(name="s", model_a='{"label": "A"}', model_b='{"label": "B"}', status="open")
    s.add(study)
    s.flush()
    both = dict(study_id=study.id, response_a="from A", response_b="from B")
    left = StudyItem(**both, position=0, prompt="p", a_on_left=True)
    right = StudyItem(**both, position=1, prompt="q", a_on_left=False)
    s.add_all([left, right])
    s.commit()
    return left, right, users


def test_votes_map_back_through_the_shuffle(studio_ctx):
    with studio_ctx.sessions() as s:
        left, right, users = _study(s)
        assert blind_view(left)["left"] == "from A" and blind_view(right)["left"] == "from B"
        assert "a_on_left" not in blind_view(left)
        cast_vote(s, left.id, users[0].id, "left")    # A shown left: A wins
        cast_vote(s, right.id, users[0].id, "left")   # B shown left: B wins
        cast_vote(s, left.id, users[1].id, "tie")
        res = study_results(s, left.study_id)
        assert (res["win"], res["tie"], res["loss"], res["votes"], res["win_rate"]) == (1, 1, 1, 3, 1 / 3)
        cast_vote(s, left.id, users[1].id, "right")   # voting again replaces the vote
        assert study_results(s, left.study_id)["loss"] == 2
        with pytest.raises(InvalidInput, match="vote must be one of left, right, tie"):
            cast_vote(s, left.id, users[0].id, "A")


def test_concurrent_votes_keep_exactly_one_per_annotator(studio_ctx):
    with studio_ctx.sessions() as s:
        left, _, users = _study(s)
        item_id, annotator = left.id, users[2].id
    barrier = threading.Barrier(8)
    errors = []

    def vote(side):
        try:
            with studio_ctx.sessions() as s:
                barrier.wait()
                cast_vote(s, item_id, annotator, side)
                s.commit()  # services flush; the caller commits
        except Exception as err:  # collected: a failing thread must fail the test
            errors.append(err)

    threads = [threading.Thread(target=vote, args=(["left", "right", "tie"][i % 3],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with studio_ctx.sessions() as s:
        votes = s.scalars(select(Vote).where(Vote.item_id == item_id)).all()
        assert len(votes) == 1 and votes[0].annotator_id == annotator


def test_database_refuses_a_second_vote_row(studio_ctx):
    from sqlalchemy.exc import IntegrityError

    with studio_ctx.sessions() as s:
        left, _, users = _study(s)
        s.add(Vote(item_id=left.id, annotator_id=users[0].id, choice="a"))
        s.commit()
        s.add(Vote(item_id=left.id, annotator_id=users[0].id, choice="b"))
        with pytest.raises(IntegrityError):
            s.commit()


def test_api_keys_are_encrypted_and_never_listed(studio_ctx):
    with session_scope(studio_ctx.sessions) as s:
        create_endpoint(s, studio_ctx.settings, name="openai", base_url="https://api.openai.com/v1", model="gpt-4o",
                        api_key="sk-very-secret-123", temperature=0.7)
        create_endpoint(s, studio_ctx.settings, name="local", base_url="http://127.0.0.1:8000/v1", model="m",
                        key_env_var="LOCAL_API_KEY")
    with studio_ctx.sessions() as s:
        row = s.scalar(select(Endpoint).where(Endpoint.name == "openai"))
        assert b"sk-very-secret-123" not in row.key_encrypted
        assert "sk-very-secret" not in repr(row) and "sk-very-secret" not in str(list_endpoints(s))
        ep = to_gad(row, studio_ctx.settings)
        assert ep.api_key() == "sk-very-secret-123" and "sk-very" not in repr(ep) + ep.model_dump_json()
        with pytest.raises(InvalidInput, match="either the API key"):
            create_endpoint(s, studio_ctx.settings, name="x", base_url="u", model="m", api_key="k", key_env_var="V")


def test_a_bad_dataset_leaves_nothing_behind(studio_ctx, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine", "response": "ok"}\n{"prompt": ""}\n')
    with pytest.raises(InvalidInput, match=r"bad\.jsonl:2"):
        with session_scope(studio_ctx.sessions) as s:
            import_dataset(s, bad)
    with studio_ctx.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Dataset)) == 0
        assert s.scalar(select(func.count()).select_from(Prompt)) == 0
    good = tmp_path / "good.jsonl"
    good.write_text("".join(f'{{"prompt": "p{i}", "response": "r{i}"}}\n' for i in range(20)))
    with session_scope(studio_ctx.sessions) as s:
        ds = import_dataset(s, good, test_fraction=0.25)
        splits = s.execute(select(Prompt.split, func.count()).where(Prompt.dataset_id == ds.id)
                           .group_by(Prompt.split)).all()
    assert dict(splits) == {"train": 15, "test": 5}


def test_metric_series_is_downsampled_without_hiding_spikes(studio_ctx, pairs_file):
    from app.services.run_views import metric_series

    with session_scope(studio_ctx.sessions) as s:
        run = run_service.submit_run(s, studio_ctx.settings, {"student": "org/model", "data": str(pairs_file)})
        s.add_all(RunMetric(run_id=run.id, name="disc_loss", step=i, value=1000.0 if i == 777 else float(i))
                  for i in range(1, 2401))
        run_id = run.id
    with studio_ctx.sessions() as s:
        full = metric_series(s, run_id, "disc_loss", max_points=5000)
        assert len(full) == 2400 and (full[0]["step"], full[0]["value"]) == (1, 1.0)
        down = metric_series(s, run_id, "disc_loss", max_points=100)
        assert 90 <= len(down) <= 100
        assert down[0]["step"] == 1 and abs(down[0]["value"] - 12.5) < 1e-6      # mean of steps 1..24
        assert (down[0]["min"], down[0]["max"], down[0]["n"]) == (1.0, 24.0, 24)
        spike = next(p for p in down if p["step"] <= 777 < p["step"] + p["n"])
        assert spike["max"] == 1000.0 and spike["value"] < 1000.0             # the mean hides it, the band does not
        part = metric_series(s, run_id, "disc_loss", start=101, end=200, max_points=10)
        assert part[0]["step"] == 101 and len(part) == 10


def test_submit_validates_and_refuses_remote_code(studio_ctx):
    with studio_ctx.sessions() as s:
        with pytest.raises(InvalidInput, match="group_size"):
            run_service.submit_run(s, studio_ctx.settings, {"student": "s", "data": "d", "group_size": 1})
        with pytest.raises(InvalidInput, match="trust_remote_code is off"):
            run_service.submit_run(s, studio_ctx.settings, {"student": "s", "data": "d", "trust_remote_code": True})


def test_collect_job_caches_in_the_database(studio_ctx, tmp_path):
    from app.devserver import DevServer
    from app.services.jobs import carry_out_job, create_job, run_collect

    data = tmp_path / "p.jsonl"
    data.write_text("".join(f'{{"prompt": "question {i}"}}\n' for i in range(12)))
    with DevServer(faults=[{"match": "question 5", "fault": "429", "times": 1, "retry_after": 0.1}]) as srv:
        with session_scope(studio_ctx.sessions) as s:
            ds = import_dataset(s, data)
            ep = create_endpoint(s, studio_ctx.settings, name="dev", base_url=srv.base_url, model="dev", api_key="k-1")
            job1 = create_job(s, "collect", {"dataset_id": ds.id, "endpoint_id": ep.id}).id
            job2 = create_job(s, "collect", {"dataset_id": ds.id, "endpoint_id": ep.id}).id
        assert carry_out_job(studio_ctx, job1, "test", run_collect) == "succeeded"
        assert carry_out_job(studio_ctx, job1, "test", run_collect) == "skipped"  # a duplicate delivery
        assert len(srv.requests()) == 13                                 # one 429 retried
        assert carry_out_job(studio_ctx, job2, "test", run_collect) == "succeeded"
        assert len(srv.requests()) == 13                                 # nothing asked twice
    with studio_ctx.sessions() as s:
        assert s.get(Job, job1).result["ok"] == 12 and s.get(Job, job2).result["ledger"]["cached"] == 12
        assert s.get(Job, job1).status == s.get(Job, job2).status == "succeeded"
    with studio_ctx.sessions() as s:
        assert all(p.teacher_response for p in s.scalars(select(Prompt)))
