"""Queries and small rules the dashboard needs that no other service offers yet.

Kept apart from the resource services so the UI holds no business logic of its own: the method
menu (the paper's methods and warmup ablations as RunConfig settings), option lists for pickers,
the run-settings preview (command line and YAML), resource estimates, evaluation tables and the
per-sample drill-down, streaming a chat answer from any model, and the blind chat vote that feeds
a study.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path
from typing import Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Checkpoint, Dataset, Evaluation, Job, JudgeScore, Prompt, Run, RunMetric, Study, StudyItem
from app.enums import JobKind, StudyStatus
from app.errors import InvalidInput, NotFound
from app.settings import Settings

# --- methods ---------------------------------------------------------------------------------
# The five methods of the paper's experiments, each as the RunConfig settings it means.
METHODS: dict[str, dict] = {
    "GAD (warmup + adversarial)": {"method": "gad", "generator_warmup": True, "discriminator_warmup": True},
    "SeqKD (baseline)": {"method": "seqkd"},
    "Off-policy (SeqKD, frozen D, GRPO)": {"method": "offpolicy"},
    "GAD without generator warmup (ablation)": {"method": "gad", "generator_warmup": False,
                                                "discriminator_warmup": True},
    "GAD without discriminator warmup (ablation)": {"method": "gad", "generator_warmup": True,
                                                    "discriminator_warmup": False},
}


def method_label(values: dict) -> str:
    """The menu entry a set of settings corresponds to."""
    method = values.get("method", "gad")
    if method != "gad":
        return next(k for k, v in METHODS.items() if v["method"] == method)
    gen, disc = values.get("generator_warmup", True), values.get("discriminator_warmup", True)
    for label, v in METHODS.items():
        if v["method"] == "gad" and (v["generator_warmup"], v["discriminator_warmup"]) == (gen, disc):
            return label
    return next(iter(METHODS))  # both warmups off: plain GAD with warmup_steps 0 (the config check says so)


# --- option lists for pickers ------------------------------------------------------------------
def dataset_options(session: Session) -> list[dict]:
    """Datasets, newest first, with how many prompts have a teacher response."""
    counts = dict(session.execute(select(Prompt.dataset_id, func.count()).where(Prompt.teacher_response.is_not(None))
                                  .group_by(Prompt.dataset_id)).all())
    return [{"id": d.id, "name": d.name, "n_prompts": d.n_prompts, "with_response": counts.get(d.id, 0),
             "label": f"#{d.id} {d.name} ({counts.get(d.id, 0)}/{d.n_prompts} with teacher responses)"}
            for d in session.scalars(select(Dataset).order_by(Dataset.id.desc()))]


def checkpoint_options(session: Session) -> list[dict]:
    """Every checkpoint, newest run first: what pickers offer as 'a checkpoint of an earlier run'."""
    rows = session.execute(select(Checkpoint, Run.name, Run.method).join(Run, Run.id == Checkpoint.run_id)
                           .order_by(Checkpoint.run_id.desc(), Checkpoint.step.desc())).all()
    return [{"id": c.id, "run_id": c.run_id, "step": c.step, "stage": c.stage, "student": str(Path(c.path) / "student"),
             "model_id": f"run-{c.run_id}/step-{c.step}",
             "label": f"run-{c.run_id}/step-{c.step} · {name} · {c.stage or method}"} for c, name, method in rows]


def run_options(session: Session, limit: int = 200) -> list[dict]:
    return [{"id": r.id, "label": f"#{r.id} {r.name} ({r.status})", "status": r.status}
            for r in session.scalars(select(Run).order_by(Run.id.desc()).limit(limit))]


# --- the run form's previews ----------------------------------------------------------------------
def changed_settings(values: dict) -> dict:
    """Settings that differ from RunConfig's defaults, in field order (required fields always)."""
    from gad.config import RunConfig

    out = {}
    for name, field in RunConfig.model_fields.items():
        if name not in values or values[name] is None:
            continue
        if field.is_required() or values[name] != field.default:
            out[name] = values[name]
    return out


def command_preview(values: dict, output: str = "runs/my-run") -> tuple[str, str]:
    """The equivalent `gad-studio train` command and YAML config (only what differs from the defaults)."""
    import shlex

    import yaml

    changed = changed_settings({**values, "output": output})
    parts = ["gad-studio train"]
    for name, value in changed.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + name.replace("_", "-"))
        else:
            parts.append(f"{flag} {shlex.quote(str(value))}")
    command = " \\\n    ".join(parts)
    text = "# gad-studio train --config run.yaml  (settings not listed keep the paper's defaults)\n"
    text += yaml.safe_dump(changed, sort_keys=False, allow_unicode=True)
    return command, text


def config_checks(values: dict) -> dict[str, list[str]]:
    """What RunConfig says of these settings: {"errors": problems that block the launch, one per line,
    "notes": settings the method ignores}."""
    from gad.config import ConfigError, build_config, method_warnings

    try:
        cfg = build_config({**values, "student": values.get("student") or "org/model",
                            "data": values.get("data") or "data.jsonl", "output": "out"}, source="the form")
    except ConfigError as err:
        return {"errors": [line.strip(" -") for line in str(err).splitlines()[1:]] or [str(err)], "notes": []}
    return {"errors": [], "notes": method_warnings(cfg)}


# --- estimates ---------------------------------------------------------------------------------
_SIZE_IN_NAME = re.compile(r"(\d+(?:\.\d+)?)\s*([bm])\b", re.IGNORECASE)


def parameter_count(student: str) -> tuple[int | None, str]:
    """(parameters, how we know): exact from a local folder's safetensors headers, else read from a hub
    id's name ('Qwen2.5-1.5B' -> 1.5e9), else unknown."""
    folder = Path(student).expanduser()
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if files:
        total = 0
        for f in files:
            with f.open("rb") as fh:
                size = int.from_bytes(fh.read(8), "little")
                header = json.loads(fh.read(size))
            for key, meta in header.items():
                if key != "__metadata__":
                    total += math.prod(meta["shape"])
        return total, "counted from the weights on disk"
    m = _SIZE_IN_NAME.search(Path(student).name)
    if m:
        scale = 1e9 if m.group(2).lower() == "b" else 1e6
        return int(float(m.group(1)) * scale), "read from the model's name"
    return None, "unknown (not a local folder, and the name gives no size)"


def model_shape(student: str) -> tuple[int, int] | None:
    """(hidden size, layers) from a local model folder's config.json, else None."""
    path = Path(student).expanduser() / "config.json"
    if not path.is_file():
        return None
    cfg = json.loads(path.read_text())
    cfg = cfg.get("text_config", cfg)
    hidden, layers = cfg.get("hidden_size"), cfg.get("num_hidden_layers")
    return (int(hidden), int(layers)) if hidden and layers else None


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 / 10 else f"{n / 2**20:.0f} MiB"


def estimate(session: Session, values: dict, dataset_id: int | None) -> dict:
    """GPU memory (parameters, optimiser, discriminator, reference; activations roughly) and time
    (planned steps x the pace of earlier runs of this student), each with the assumptions it makes.
    Returns {"memory": [lines], "time": [lines]}."""
    from gad.config import ConfigError, build_config, planned_steps

    memory, timing = [], []
    student = values.get("student") or ""
    try:
        cfg = build_config({**values, "student": student or "org/model", "data": "data.jsonl", "output": "out"})
    except ConfigError:
        return {"memory": ["fix the settings above to get an estimate"], "time": []}
    params, how = parameter_count(student) if student else (None, "choose a student")
    adversarial = cfg.method in ("gad", "offpolicy")
    if params:
        per = 2 if cfg.dtype in ("bfloat16", "float16") else 4  # bytes per weight
        if cfg.lora:
            trained = params * 0.01  # adapters: about 1% of the weights at r=16 (order of magnitude)
            student_b = params * per + trained * 16
        else:
            student_b = params * (per + per + 8)  # weights, gradients, AdamW's two moments (fp32)
        disc_b = student_b if adversarial else 0
        ref_b = params * per if (cfg.method == "gad" and cfg.kl_coef > 0 and not cfg.lora) else 0
        total = student_b + disc_b + ref_b
        parts = [f"student {_gib(student_b)}"] + ([f"discriminator {_gib(disc_b)}"] if disc_b else []) \
            + ([f"KL reference {_gib(ref_b)}"] if ref_b else [])
        shape = model_shape(student)
        if shape:
            hidden, layers = shape
            tokens = (cfg.group_size if adversarial else 1) * (cfg.max_prompt_length + cfg.max_new_tokens)
            act_b = tokens * hidden * layers * 34  # bytes per token and layer: 34 x hidden (bf16, no recomputation)
            total += act_b
            parts.append(f"activations ~{_gib(act_b)} per prompt's group in a micro-batch")
        size = f"{params / 1e9:.2f} B" if params >= 1e8 else f"{params / 1e6:.1f} M"
        memory.append(f"**~{_gib(total)}** on one GPU for {size} parameters ({how})")
        memory.append(" · ".join(parts))
        memory.append("assumes AdamW with fp32 states and no ZeRO/FSDP sharding (which divides the optimiser part "
                      "across GPUs); activations use Korthikanti et al.'s 34·hidden bytes per token and layer")
    else:
        memory.append(f"parameters {how}")
    n_train = None
    if dataset_id:
        n_train = session.scalar(select(func.count()).select_from(Prompt).where(
            Prompt.dataset_id == dataset_id, Prompt.teacher_response.is_not(None), Prompt.split == "train")) or 0
        if cfg.max_examples:
            n_train = min(n_train, cfg.max_examples)
    steps = planned_steps(cfg, n_train or 1)
    total_steps = sum(steps.values())
    plan = " + ".join(f"{n} {stage}" for stage, n in steps.items() if n)
    timing.append(f"{total_steps} steps ({plan})" + ("" if n_train else "; unset step counts assume one step "
                                                                         "(choose a dataset for one epoch)"))
    pace = _pace(session, student, cfg.method)
    mine = cfg.batch_size * (cfg.group_size if adversarial else 1) * cfg.max_new_tokens
    if pace and 0.25 <= mine / max(1, pace[2]) <= 4:  # scaling a pace further than 4x would be a guess
        sec, n_runs, work = pace
        scaled = sec * mine / work
        timing.append(f"**~{_duration(scaled * total_steps)}** at {scaled:.2f} s/step, scaled from {n_runs} earlier "
                      f"run(s) of this student ({sec:.2f} s/step at {work:,} sampled tokens per step)")
    elif pace:
        timing.append(f"earlier runs of this student sampled {pace[2]:,} tokens per step, this one {mine:,}: too "
                      f"different to extrapolate; the run page shows the ETA once it starts")
    else:
        timing.append("no earlier run of this student to time from: the run page shows the ETA once it starts")
    return {"memory": memory, "time": timing}


def _pace(session: Session, student: str, method: str) -> tuple[float, int, int] | None:
    """Median seconds per step of earlier runs of this student and method, and the work per step they did."""
    if not student:
        return None
    runs = [r for r in session.scalars(select(Run).where(Run.method == method).order_by(Run.id.desc()).limit(50))
            if (r.config or {}).get("student") in (student, str(Path(student).expanduser().resolve()))][:5]
    times, works = [], []
    for r in runs:
        vals = list(session.scalars(select(RunMetric.value).where(RunMetric.run_id == r.id,
                                                                  RunMetric.name == "step_time")))
        if vals:
            times.append(statistics.median(vals))
            c = r.config
            works.append(c["batch_size"] * (c["group_size"] if method != "seqkd" else 1) * c["max_new_tokens"])
    if not times:
        return None
    return statistics.median(times), len(times), int(statistics.median(works))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# --- evaluations -----------------------------------------------------------------------------
def evaluation_jobs(session: Session, limit: int = 50) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.kind == JobKind.evaluate).order_by(Job.id.desc()).limit(limit)))


def evaluation_rows(session: Session, job_id: int) -> list[dict]:
    rows = session.scalars(select(Evaluation).where(Evaluation.job_id == job_id).order_by(Evaluation.id))
    return [{"id": e.id, "model": e.model_name, "set": e.set_name, "score": e.score, "ci_low": e.ci_low,
             "ci_high": e.ci_high, "length": e.length, "checkpoint_id": e.checkpoint_id,
             "judged": (e.summary or {}).get("judged"), "unparsed": (e.summary or {}).get("unparsed")} for e in rows]


def default_length_range(rows: list[dict], teacher: str | None) -> tuple[float, float]:
    """The paper's guard against the judge's length bias: within select_checkpoint's ratio of the teacher's
    mean length; without a teacher row, every length shown."""
    import inspect

    from gad.metrics import select_checkpoint

    ratio = inspect.signature(select_checkpoint).parameters["max_length_ratio"].default
    t_len = [r["length"] for r in rows if r["model"] == teacher and r["length"] is not None]
    if t_len:
        mean = statistics.fmean(t_len)
        return mean / ratio, mean * ratio
    lengths = [r["length"] for r in rows if r["length"] is not None]
    return 0.0, max(lengths or [0.0]) * 1.25 + 1


def best_in_length_range(rows: list[dict], lo: float, hi: float, exclude: str | None = None) -> dict | None:
    """The model with the best mean score over its sets among those whose mean length lies in [lo, hi]
    (guards against the judge's length bias: a model that got long can win on score alone)."""
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        if r["model"] != exclude and r["score"] is not None and r["length"] is not None:
            by_model.setdefault(r["model"], []).append(r)
    means = [{"model": m, "score": statistics.fmean(x["score"] for x in rs),
              "length": statistics.fmean(x["length"] for x in rs)} for m, rs in by_model.items()]
    eligible = [m for m in means if lo <= m["length"] <= hi]
    if not eligible:
        return None
    best = max(eligible, key=lambda m: m["score"])
    # Scores are shown to one decimal: models equal at that precision tie, and no one of them is "best".
    return {**best, "tied": [m["model"] for m in eligible if round(m["score"], 1) == round(best["score"], 1)]}


def judge_samples(session: Session, evaluation_id: int, limit: int = 500) -> list[dict]:
    """Per-sample verdicts of one (model, set), with the prompt and the judge's reference answer read
    back from the evaluation's samples.jsonl (the database keeps scores and verdicts only)."""
    ev = session.get(Evaluation, evaluation_id)
    if ev is None:
        raise NotFound(f"no evaluation with id {evaluation_id}")
    extra: dict[str, dict] = {}
    job = session.get(Job, ev.job_id) if ev.job_id else None
    output = ((job.result or {}).get("output") if job else None)
    path = Path(output) / "samples.jsonl" if output else None
    if path is not None and path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                if rec.get("model") == ev.model_name and rec.get("set") == ev.set_name:
                    extra[str(rec.get("id"))] = rec
    out = []
    for r in session.scalars(select(JudgeScore).where(JudgeScore.evaluation_id == evaluation_id)
                             .order_by(JudgeScore.id).limit(limit)):
        rec = extra.get(r.prompt_external_id, {})
        orders = r.verdicts or {}
        out.append({"id": r.prompt_external_id, "prompt": rec.get("prompt", ""), "response": r.response,
                    "reference": rec.get("reference") or "", "model_score": r.model_score,
                    "reference_score": r.reference_score,
                    "verdicts": [{"order": k, **(v or {})} for k, v in orders.items()]})
    return out


# --- chat --------------------------------------------------------------------------------------
def chat_stream(session: Session, settings: Settings, cache, model_id: str, messages: list[dict], *,
                max_new_tokens: int, temperature: float, top_p: float) -> Iterator[dict]:
    """One answer, piece by piece, the way /v1/chat/completions answers (services.chat.answer)."""
    from app.services.chat import answer

    if not messages or messages[-1].get("role") != "user":
        raise InvalidInput("the conversation must end with a user message", field="messages")
    return answer(session, settings, cache, model_id, messages, max_new_tokens=max_new_tokens,
                  temperature=temperature, top_p=top_p)


# --- blind chat votes feed a study ---------------------------------------------------------------
def arena_study(session: Session, model_x: str, model_y: str, user_id: int | None) -> Study:
    """The study that collects blind chat votes between two models (one per unordered pair), created
    open on first use; it shows on the Human evaluation page like any other study."""
    a, b = sorted((model_x, model_y))
    name = f"Chat arena: {a} vs {b}"
    study = session.scalar(select(Study).where(Study.name == name))
    if study is None:
        study = Study(name=name, model_a=json.dumps({"label": a, "chat_model": a}),
                      model_b=json.dumps({"label": b, "chat_model": b}), dataset_id=None,
                      status=StudyStatus.open, annotators_per_item=1,
                      guidelines="Blind votes cast in the Chat page's side-by-side mode.",
                      settings={"source": "chat"}, created_by=user_id)
        session.add(study)
        session.flush()
    return study


def record_arena_vote(session: Session, user_id: int, models: list[str], prompt: str, responses: list[str],
                      side: str) -> Study:
    """A blind side-by-side vote from the chat: `models` and `responses` in the order shown (left, right);
    `side` is left | right | tie | both_bad. Stored as a study item with one vote (the shuffle recorded)."""
    from app.services.studies import cast_vote, leaks

    if len(models) != 2 or len(responses) != 2:
        raise InvalidInput("a vote compares exactly two models", field="models")
    if models[0] == models[1]:
        raise InvalidInput("both sides are the same model; pick two different ones", field="models")
    if not all(r.strip() for r in responses):
        raise InvalidInput("both models must have answered before you vote", field="responses")
    study = arena_study(session, models[0], models[1], user_id)
    a_label = json.loads(study.model_a)["label"]
    a_on_left = models[0] == a_label
    resp_a, resp_b = (responses[0], responses[1]) if a_on_left else (responses[1], responses[0])
    position = (session.scalar(select(func.max(StudyItem.position)).where(StudyItem.study_id == study.id)) or 0) + 1
    item = StudyItem(study_id=study.id, position=position, prompt=prompt, response_a=resp_a, response_b=resp_b,
                     a_on_left=a_on_left, leaks=leaks(resp_a) + leaks(resp_b))
    session.add(item)
    session.flush()
    cast_vote(session, item.id, user_id, side)
    return study


# --- studies -------------------------------------------------------------------------------------
def study_job(session: Session, study_id: int) -> Job | None:
    """The generation job of a study (its items are written by a worker)."""
    for job in session.scalars(select(Job).where(Job.kind == JobKind.study).order_by(Job.id.desc())):
        if (job.params or {}).get("study_id") == study_id:
            return job
    return None


def study_model_spec(session: Session, settings: Settings, choice: str, label: str | None = None) -> dict:
    """A picker's choice as a study/evaluation model: 'run-3/step-40' (a checkpoint), a model id from
    the chat registry, or a path (a model folder, or a responses file by its suffix)."""
    from app.services.chat import list_models

    choice = (choice or "").strip()
    if not choice:
        raise InvalidInput("choose a model", field="model")
    for c in checkpoint_options(session):
        if c["model_id"] == choice:
            return {"checkpoint_id": c["id"], "label": label or choice}
    for entry in list_models(session, settings):
        if entry.id == choice and entry.kind == "base":
            return {"path": entry.path, "label": label or choice}
        if entry.id == choice and entry.kind == "endpoint":
            raise InvalidInput(f"{choice}: an endpoint cannot be evaluated here; collect its responses into a file "
                               f"and give the file", field="model")
    if Path(choice).suffix.lower() in (".jsonl", ".json", ".csv", ".parquet"):
        return {"responses": choice, "label": label or Path(choice).stem}
    return {"path": choice, "label": label or Path(choice.rstrip("/")).name or choice}
