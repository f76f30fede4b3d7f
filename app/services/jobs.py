"""Non-training jobs: teacher collection (io queue) and study generation (gpu queue)."""

from __future__ import annotations

import random

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.models import Dataset, Endpoint as EndpointRow, Job, Prompt, Study, StudyItem, TeacherResponse, utcnow
from app.db.session import session_scope
from app.services.claims import claim_row
from app.services.datasets import dataset_examples
from app.services.endpoints import to_gad


def create_job(session: Session, kind: str, params: dict) -> Job:
    job = Job(kind=kind, params=params)
    session.add(job)
    session.flush()
    return job


def claim_job(session: Session, job_id: int, worker: str, stale_after: float) -> str | None:
    return claim_row(session, Job, job_id, worker, stale_after)


def finish_job(session: Session, job_id: int, claim: str, status: str, result: dict | None = None,
               error: str | None = None) -> None:
    session.execute(update(Job).where(Job.id == job_id, Job.claim == claim)
                    .values(status=status, result=result, error=error, finished_at=utcnow())
                    .execution_options(synchronize_session=False))


class DbResponseStore:
    """gad's ResponseStore on the teacher_responses table: the cache and the cost ledger."""

    def __init__(self, sessions, endpoint_id: int | None = None):
        self.sessions, self.endpoint_id = sessions, endpoint_id

    def get(self, key: str) -> dict | None:
        with self.sessions() as s:
            row = s.scalar(select(TeacherResponse).where(TeacherResponse.cache_key == key))
            return dict(row.record) if row else None

    def put(self, key: str, record: dict) -> None:
        usage = record.get("usage") or {}
        try:
            with session_scope(self.sessions) as s:
                s.add(TeacherResponse(cache_key=key, endpoint_id=self.endpoint_id, status=record["status"],
                                      response=record.get("response"), record=record,
                                      prompt_tokens=usage.get("prompt_tokens", 0),
                                      completion_tokens=usage.get("completion_tokens", 0),
                                      cost=record.get("cost", 0.0)))
        except IntegrityError:  # another worker stored the same answer first: keep theirs
            pass


def run_collect(ctx, job_id: int, claim: str) -> dict:
    """Teacher responses for every prompt of a dataset, written back onto its prompts."""
    from gad.api_client import ChatRunner

    with ctx.sessions() as s:
        job = s.get(Job, job_id)
        params = dict(job.params)
        endpoint = to_gad(s.get(EndpointRow, params["endpoint_id"]), ctx.settings)
        examples = dataset_examples(s, params["dataset_id"])
        s.execute(update(Job).where(Job.id == job_id).values(total=len(examples)))
        s.commit()

    counter = {"n": 0}

    def on_result(result, ledger):
        counter["n"] += 1
        if counter["n"] % 10 == 0 or counter["n"] == len(examples):
            with session_scope(ctx.sessions) as s:
                s.execute(update(Job).where(Job.id == job_id, Job.claim == claim)
                          .values(done=counter["n"], cost=ledger.cost, heartbeat_at=utcnow()))

    runner = ChatRunner(endpoint, DbResponseStore(ctx.sessions, params["endpoint_id"]), on_result=on_result)
    results = runner.run([ex.messages for ex in examples])
    with session_scope(ctx.sessions) as s:
        prompts = s.scalars(select(Prompt).where(Prompt.dataset_id == params["dataset_id"]).order_by(Prompt.idx)).all()
        for p, r in zip(prompts, results):
            if r["status"] == "ok":
                p.teacher_response = r["response"]
    statuses = [r["status"] for r in results]
    return {"ok": statuses.count("ok"), "refused": statuses.count("refused"), "failed": statuses.count("failed"),
            "ledger": runner.ledger.as_dict()}


def create_study(session: Session, *, name: str, model_a: str, model_b: str, dataset_id: int,
                 user_id: int | None = None) -> tuple[Study, Job]:
    if session.get(Dataset, dataset_id) is None:
        raise ValueError(f"no dataset with id {dataset_id}")
    study = Study(name=name, model_a=model_a, model_b=model_b, dataset_id=dataset_id, created_by=user_id)
    session.add(study)
    session.flush()
    return study, create_job(session, "study", {"study_id": study.id})


def run_study_generation(ctx, job_id: int, claim: str, max_new_tokens: int = 256, seed: int = 0) -> dict:
    """Both models answer the study's test prompts; left/right is shuffled per item and recorded."""
    from gad.evaluate import ModelSpec, generate_responses

    with ctx.sessions() as s:
        study = s.get(Study, s.get(Job, job_id).params["study_id"])
        examples = dataset_examples(s, study.dataset_id, "test") or dataset_examples(s, study.dataset_id)
        a, b, study_id = study.model_a, study.model_b, study.id
        done = s.scalar(select(StudyItem.id).where(StudyItem.study_id == study_id).limit(1))
    if done is not None:
        return {"items": "already generated"}  # idempotent on redelivery
    kw = dict(max_new_tokens=max_new_tokens, temperature=0.8, greedy=False, seed=seed,
              trust_remote_code=ctx.settings.allow_remote_code)
    resp_a = generate_responses(ModelSpec("a", path=a), examples, **kw)
    resp_b = generate_responses(ModelSpec("b", path=b), examples, **kw)
    rng = random.Random(f"study-{study_id}")
    with session_scope(ctx.sessions) as s:
        s.add_all(StudyItem(study_id=study_id, position=i, prompt=ex.prompt_text, response_a=ra, response_b=rb,
                            a_on_left=rng.random() < 0.5)
                  for i, (ex, ra, rb) in enumerate(zip(examples, resp_a, resp_b)))
        s.get(Study, study_id).status = "open"
    return {"items": len(examples)}


def run_evaluation(ctx, job_id: int, claim: str) -> dict:
    """Judge checkpoints (or any models) on prompt sets; rows per (model, set) and per sample.

    params: models [{"name", "path" | "responses" | "checkpoint_id"}], sets [...], judge_endpoint_id,
            limit, max_new_tokens, greedy, both_orders, teacher.
    """
    from gad.evaluate import ModelSpec, evaluate

    from app.db.models import Checkpoint, Evaluation, JudgeScore

    with ctx.sessions() as s:
        params = dict(s.get(Job, job_id).params)
        judge = to_gad(s.get(EndpointRow, params["judge_endpoint_id"]), ctx.settings)
        specs, ckpt_of = [], {}
        for m in params["models"]:
            if m.get("checkpoint_id"):
                ck = s.get(Checkpoint, m["checkpoint_id"])
                ckpt_of[m["name"]] = ck.id
                specs.append(ModelSpec(m["name"], path=f"{ck.path}/student"))
            else:
                specs.append(ModelSpec(m["name"], path=m.get("path"), responses=m.get("responses")))
    out = ctx.settings.data_dir / "evaluations" / f"job-{job_id}"
    table = evaluate(specs, params["sets"], judge, out, limit=params.get("limit"),
                     max_new_tokens=params.get("max_new_tokens", 1536), greedy=params.get("greedy", False),
                     both_orders=params.get("both_orders", False), teacher=params.get("teacher"),
                     say=lambda text: None)
    import json

    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    with session_scope(ctx.sessions) as s:
        for row in table["rows"]:
            ev = Evaluation(job_id=job_id, checkpoint_id=ckpt_of.get(row["model"]), model_name=row["model"],
                            set_name=row["set"], score=row["score"], ci_low=row["ci_low"], ci_high=row["ci_high"],
                            length=row["length"], summary=row)
            s.add(ev)
            s.flush()
            s.add_all(JudgeScore(evaluation_id=ev.id, prompt_external_id=x["id"], response=x["response"],
                                 model_score=x.get("model_score"), reference_score=x.get("reference_score"),
                                 verdicts=x["orders"])
                      for x in samples if x["model"] == row["model"] and x["set"] == row["set"])
    return {"output": str(out), "selected": table.get("selected"), "rows": len(table["rows"])}
