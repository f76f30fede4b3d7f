"""Non-training jobs: teacher collection (io queue), evaluation and study generation (gpu queue).

Each job is a row (kind, params, status, progress) created here and run by a worker task through
`carry_out_job` (the life every run and job shares: app/services/lifecycle.py); progress, failures
with their reasons, tokens, cost and ETA are written to the row while it runs, so the API and the
dashboard show it live and a closed browser loses nothing.

A job may carry a cost cap (`params["max_cost_usd"]`, app/services/costs.py): when its spend reaches
the cap it stops sending, ends `paused` with the spend and the cap in its result, and `resume_job`
queues it again with a raised cap (answers already paid for come from the cache).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db.models import Checkpoint, Dataset, Job, Prompt, utcnow
from app.db.models import Endpoint as EndpointRow
from app.db.session import session_scope
from app.enums import JobKind, RunStatus
from app.errors import InvalidInput, NotFound, StudioError
from app.services import lifecycle
from app.services.costs import CostCap, CostCapReached, checked_cap
from app.services.datasets import dataset_examples, get_dataset
from app.services.endpoints import get_endpoint, to_gad
from app.services.lookup import one
from app.services.progress import JobProgress
from app.services.response_store import DbResponseStore
from gad.llm.eval_config import BUILTIN_SETS
from gad.llm.eval_config import default as eval_default
from gad.training.rundir import student_dir

log = logging.getLogger("gad_studio.jobs")


def create_job(session: Session, kind: JobKind, params: dict, user_id: int | None = None) -> Job:
    job = Job(kind=kind, params=params, created_by=user_id)
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> Job:
    return one(session, Job, job_id, "job")


def list_jobs(session: Session, kind: str | None = None, limit: int = 50) -> list[Job]:
    q = select(Job).order_by(Job.id.desc()).limit(limit)
    if kind:
        if kind not in JobKind.__members__:
            raise InvalidInput(f"kind must be one of {', '.join(JobKind)}", field="kind")
        q = q.where(Job.kind == kind)
    return list(session.scalars(q))


def job_view(job: Job) -> dict:
    paused = job.status == RunStatus.paused and isinstance(job.result, dict)
    return {"message": job.result.get("paused") if paused else None,
            "max_cost_usd": (job.params or {}).get("max_cost_usd"),
            "id": job.id, "kind": job.kind, "status": job.status, "params": job.params, "done": job.done,
            "total": job.total, "progress": round(job.done / job.total, 4) if job.total else 0.0,
            "cost": job.cost, "stats": job.stats or {}, "result": job.result, "error": job.error,
            "eta_seconds": job.eta_seconds if job.status == RunStatus.running else None,
            "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at}


def create_collect_job(session: Session, *, dataset_id: int, endpoint_id: int, retry_failed: bool = False,
                       max_cost_usd: float | None = None, user_id: int | None = None) -> Job:
    """Teacher responses for every prompt of a dataset. Answers already cached are never asked again."""
    ds = get_dataset(session, dataset_id)
    get_endpoint(session, endpoint_id)
    if not ds.n_prompts:
        raise InvalidInput(f"dataset {dataset_id} has no prompts", field="dataset_id")
    return create_job(session, JobKind.collect, {"dataset_id": dataset_id, "endpoint_id": endpoint_id,
                                                 "retry_failed": retry_failed,
                                                 "max_cost_usd": checked_cap(max_cost_usd)}, user_id)


def create_evaluation_job(session: Session, *, models: list[dict], sets: list[str], judge_endpoint_id: int,
                          limit: int | None = None, max_new_tokens: int = eval_default("max_new_tokens"),
                          greedy: bool = False,
                          both_orders: bool = False, teacher: str | None = None, use_vllm: bool = False,
                          max_cost_usd: float | None = None, user_id: int | None = None) -> Job:
    """models: [{name, checkpoint_id | path | responses}]; sets: built-in names or 'dataset:<id>'."""
    get_endpoint(session, judge_endpoint_id)
    if not models:
        raise InvalidInput("choose at least one model to evaluate", field="models")
    names = [m.get("name") for m in models]
    if len(set(names)) != len(names) or not all(names):
        raise InvalidInput("every model needs a distinct name", field="models")
    for i, m in enumerate(models):
        given = [k for k in ("checkpoint_id", "path", "responses") if m.get(k) is not None]
        if len(given) != 1:
            raise InvalidInput(f"models[{i}]: give exactly one of checkpoint_id, path, responses", field=f"models.{i}")
        if m.get("checkpoint_id") is not None and session.get(Checkpoint, m["checkpoint_id"]) is None:
            raise NotFound(f"models[{i}]: no checkpoint with id {m['checkpoint_id']}", field=f"models.{i}")
    check_sets(session, sets)
    if teacher is not None and teacher not in names:
        raise InvalidInput(f"teacher {teacher!r} is not one of the models", field="teacher")
    return create_job(session, JobKind.evaluate, {
        "models": models, "sets": sets, "judge_endpoint_id": judge_endpoint_id, "limit": limit,
        "max_new_tokens": max_new_tokens, "greedy": greedy, "both_orders": both_orders, "teacher": teacher,
        "use_vllm": use_vllm, "max_cost_usd": checked_cap(max_cost_usd)}, user_id)


def check_sets(session: Session, sets: list[str]) -> None:
    """Evaluation prompt sets: built-in names or 'dataset:<id>' of an existing dataset."""
    if not sets:
        raise InvalidInput("choose at least one prompt set", field="sets")
    for s in sets:
        if s in BUILTIN_SETS:
            continue
        if re.fullmatch(r"dataset:[0-9]{1,9}", s):
            get_dataset(session, int(s[8:]))
            continue
        raise InvalidInput(f"unknown set {s!r}: one of {', '.join(BUILTIN_SETS)} or dataset:<id>", field="sets")


def carry_out_job(ctx, job_id: int, worker: str, body) -> str:
    """One worker attempt on a job: claimed, kept alive, finished with `body(ctx, job_id, claim)`'s
    result (or failed with its error; or paused when its cost cap is reached). Returns the status, or
    "skipped" if the job was not free."""
    def attempt(claim: str) -> lifecycle.Outcome:
        try:
            return lifecycle.Outcome(values={"result": body(ctx, job_id, claim)})
        except CostCapReached as cap:
            return lifecycle.Outcome(RunStatus.paused, values={"result": {
                "paused": str(cap), "spent_usd": cap.spent, "cap_usd": cap.cap}})
        except StudioError as err:  # the input was wrong: the user's message (and where), not a traceback
            return lifecycle.Outcome(RunStatus.failed, values={"error": err.message, "result": {
                "http_status": err.http_status, **err.as_dict()}})

    return lifecycle.carry_out(ctx, Job, job_id, worker, attempt, started_at=utcnow())


def cancel_job(session: Session, job_id: int) -> Job:
    """A queued or interrupted job is cancelled at once (a running one finishes: jobs have no steps)."""
    return lifecycle.cancel(session, Job, job_id, "job")


def retry_job(session: Session, job_id: int) -> Job:
    """Queue a failed, interrupted or cancelled job again (answers already paid for come from the cache)."""
    return lifecycle.requeue(session, Job, job_id, "job")


def resume_job(session: Session, job_id: int, max_cost_usd: float | None) -> Job:
    """Queue a paused (or failed, interrupted, cancelled) job again under a new cap (None: no cap).
    A cap at or below what the job has spent would pause it again at once, so it is refused."""
    job = get_job(session, job_id)
    checked_cap(max_cost_usd)
    if max_cost_usd is not None and max_cost_usd <= (job.cost or 0.0):
        raise InvalidInput(f"job {job_id} has spent ${job.cost:.6f}; raise the cap above that to resume",
                           field="max_cost_usd")
    lifecycle.requeue_row(session, Job, job_id, f"job {job_id}")
    session.execute(update(Job).where(Job.id == job_id)
                    .values(params={**job.params, "max_cost_usd": max_cost_usd})
                    .execution_options(synchronize_session=False))
    session.flush()
    session.refresh(job)
    return job


def _progress_and_cap(ctx, job_id: int, claim: str, total: int,
                      endpoint_id: int) -> tuple[JobProgress, DbResponseStore]:
    """The attempt's progress (carrying on from what the job paid before) and its store under the job's cap."""
    with ctx.sessions() as s:
        job = s.get(Job, job_id)
        before, cap = dict(job.stats or {}), (job.params or {}).get("max_cost_usd")
    progress = JobProgress(ctx.sessions, job_id, claim, total, before)
    store = DbResponseStore(ctx.sessions, endpoint_id, CostCap(cap, progress.spent) if cap is not None else None)
    return progress, store


def run_collect(ctx, job_id: int, claim: str) -> dict:
    """Teacher responses for every prompt of a dataset, written back onto its prompts."""
    from gad.llm.api_client import ChatRunner

    with ctx.sessions() as s:
        job = s.get(Job, job_id)
        params = dict(job.params)
        endpoint = to_gad(s.get(EndpointRow, params["endpoint_id"]), ctx.settings)
        examples = dataset_examples(s, params["dataset_id"])
    progress, store = _progress_and_cap(ctx, job_id, claim, len(examples), params["endpoint_id"])
    runner = ChatRunner(endpoint, store, on_result=progress, retry_final=bool(params.get("retry_failed")))
    progress.watch(runner.ledger)  # from the start: a paid but unusable answer is delivered to nobody
    try:
        results = runner.run([ex.messages for ex in examples])
    finally:
        progress.write()  # the exact figures, also when the cap (or the endpoint) stopped the run
    with session_scope(ctx.sessions) as s:
        prompts = s.scalars(select(Prompt).where(Prompt.dataset_id == params["dataset_id"]).order_by(Prompt.idx)).all()
        for p, r in zip(prompts, results):
            if r["status"] == "ok":
                p.teacher_response = r["response"]
    statuses = Counter(r["status"] for r in results)
    return {"ok": statuses["ok"], "refused": statuses["refused"], "failed": statuses["failed"],
            "ledger": progress.figures()}


def run_evaluation(ctx, job_id: int, claim: str) -> dict:
    """Judge checkpoints (or any models) on prompt sets; rows per (model, set) and per sample."""
    from app.services.datasets import export_jsonl
    from gad.llm.evaluate import ModelSpec, evaluate, load_set

    out = ctx.settings.data_dir / "evaluations" / f"job-{job_id}"
    with ctx.sessions() as s:
        params = dict(s.get(Job, job_id).params)
        judge = to_gad(s.get(EndpointRow, params["judge_endpoint_id"]), ctx.settings)
        specs, ckpt_of = [], {}
        for m in params["models"]:
            if m.get("checkpoint_id"):
                ck = s.get(Checkpoint, m["checkpoint_id"])
                ckpt_of[m["name"]] = ck.id
                specs.append(ModelSpec(m["name"], path=str(student_dir(ck.path))))
            else:
                specs.append(ModelSpec(m["name"], path=m.get("path"), responses=m.get("responses")))
        sets = []
        for name in params["sets"]:  # an uploaded dataset is evaluated from a file, like the built-in sets
            if name.startswith("dataset:"):
                ds_id = int(name[8:])
                sets.append(str(export_jsonl(s, ds_id, out / "sets" / f"dataset-{ds_id}.jsonl", split="test",
                                             require_response=False)))
            else:
                sets.append(name)
    # done/total counts judge answers: a reference per prompt, then a verdict per model, prompt and order
    n_prompts = sum(len(load_set(name, params.get("limit"))[1]) for name in sets)
    orders = 2 if params.get("both_orders") else 1
    progress, store = _progress_and_cap(ctx, job_id, claim, n_prompts * (1 + len(specs) * orders),
                                        params["judge_endpoint_id"])
    try:
        table = evaluate(specs, sets, judge, out, limit=params.get("limit"),
                         max_new_tokens=params.get("max_new_tokens", eval_default("max_new_tokens")),
                         greedy=params.get("greedy", False),
                         both_orders=params.get("both_orders", False), teacher=params.get("teacher"),
                         cache=store, say=lambda text: None, use_vllm=params.get("use_vllm", False),
                         on_result=progress)
    finally:
        progress.write()  # the exact figures, also when the cap (or the endpoint) stopped the judging
    _store_evaluation(ctx, job_id, out, table, ckpt_of)
    health = table.get("health") or {}
    if health.get("mostly_unusable"):
        # The scores are stored for inspection, but a run of unusable verdicts must not look like a result.
        raise JudgeUnusable(f"most judge verdicts were unusable ({health}); check the judge endpoint and model")
    return {"output": str(out), "selected": table.get("selected"), "rows": len(table["rows"]), "health": health,
            "ledger": progress.figures()}


def _store_evaluation(ctx, job_id: int, out, table: dict, ckpt_of: dict) -> None:
    """The evaluation's rows (per model and set) and per-sample verdicts, into the database."""
    from app.db.models import Evaluation, JudgeScore

    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines() if line.strip()]
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


class JudgeUnusable(RuntimeError):
    """An evaluation whose judge answered mostly garbage or failures: the job fails, loudly."""


def run_study_generation(ctx, job_id: int, claim: str) -> dict:
    from app.services.study_items import generate_items

    return generate_items(ctx, job_id, claim)


def dataset_for_job(session: Session, job: Job) -> Dataset | None:
    ds_id = (job.params or {}).get("dataset_id")
    return session.get(Dataset, ds_id) if ds_id else None
