"""Building a study's items (the study job's worker task): both models answer the study's test prompts,
left/right is drawn per item and recorded, responses that give their model away are flagged, and the
study's LLM judge, if it has one, rates every item in both orders (study_judge.judge_items).

An annotator only ever receives the prompt and two anonymous responses, left and right, in the order
drawn here; votes are stored as a/b/tie after undoing that shuffle (study_queue). The draw is seeded by
a random secret of the study (never by its id, which annotators can see).
"""

from __future__ import annotations

import json
import logging
import random
import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Checkpoint, Job, Study, StudyItem
from app.db.session import session_scope
from app.enums import StudyStatus
from app.services.datasets import dataset_examples
from app.services.model_ids import checkpoint_student
from app.services.study_judge import judge_items

log = logging.getLogger("gad_studio.studies")

# Phrases that tell an annotator which model wrote a response. Arena tools clean these after the
# fact; here the creator sees them before anyone votes.
LEAK = re.compile(r"\b(?:as an? (?:ai|language model|assistant)\b[^.\n]{0,40}\b(?:developed|created|trained|made) by"
                  r"|i(?:'m| am) (?:chatgpt|gpt-?[0-9][\w.-]*|claude|qwen[\w.-]*|llama[\w.-]*|gemini|mistral)"
                  r"|as (?:chatgpt|gpt-?4[\w.-]*|claude|qwen[\w.-]*|llama[\w.-]*|gemini)\b"
                  r"|openai|anthropic|alibaba cloud|meta ai|google deepmind|tongyi)", re.IGNORECASE)


def leaks(text: str) -> list[str]:
    return sorted({m.group(0) for m in LEAK.finditer(text or "")})


def _answers(spec: dict, examples, max_new_tokens: int, seed: int, allow_remote_code: bool, on_answer=None):
    """One model's answers to the examples; `on_answer()` is called after each (the job's progress)."""
    from gad.llm.evaluate import ModelSpec, responses_from_file
    from gad.llm.generation import generate_for_messages

    tick = on_answer or (lambda: None)
    if spec.get("responses"):
        out = responses_from_file(ModelSpec(spec["label"], responses=spec["responses"]), examples)
        for _ in out:
            tick()
        return out
    # What gad's generate_responses runs, consumed answer by answer so each one is counted as it comes.
    out = []
    for text, *_ in generate_for_messages(spec["path"], [ex.messages for ex in examples],
                                          max_new_tokens=max_new_tokens, temperature=0.8, greedy=False, seed=seed,
                                          trust_remote_code=allow_remote_code):
        out.append(text)
        tick()
    return out


def generate_items(ctx, job_id: int, claim: str | None = None) -> dict:
    """Both models answer the study's test prompts; left/right is drawn per item and recorded; then the
    judge, if any, rates the items (under the job's cost cap: CostCapReached pauses the job, and the job
    queued again judges what is left). The database session is closed while the models generate (that
    can take hours on real models). With the worker's `claim`, the job row shows done/total answers
    (both models), then done/total verdicts, with rate and ETA, live."""
    from app.services.progress import JobProgress

    with ctx.sessions() as s:
        study_id = s.get(Job, job_id).params["study_id"]
        generated = s.scalar(select(StudyItem.id).where(StudyItem.study_id == study_id).limit(1)) is not None
    if generated:  # idempotent on redelivery; the judging may be what the first delivery left undone
        return {"items": "already generated", **judge_items(ctx, study_id, job_id, claim)}
    with ctx.sessions() as s:
        study = s.get(Study, study_id)
        examples = dataset_examples(s, study.dataset_id, "test") or dataset_examples(s, study.dataset_id)
        examples = examples[:study.n_items] if study.n_items else examples
        seed, tokens = study.settings.get("seed", 0), study.settings.get("max_new_tokens", 256)
        specs = [_resolved(s, json.loads(study.model_a)), _resolved(s, json.loads(study.model_b))]
        study_id = study.id
        if not study.blind_secret:  # a study made before secrets existed, or by a direct insert
            study.blind_secret = secrets.token_hex(32)
            s.commit()
        secret = study.blind_secret
    progress = JobProgress(ctx.sessions, job_id, claim, 2 * len(examples)) if claim else None
    tick = (lambda: progress({"status": "ok"})) if progress else None  # no ledger: nothing is paid
    resp_a, resp_b = [_answers(spec, examples, tokens, seed + i, ctx.settings.allow_remote_code, tick)
                      for i, spec in enumerate(specs)]
    rng = random.Random(secret)  # secret, stored: the draw is reproducible here and unguessable elsewhere
    stripped = 0
    with session_scope(ctx.sessions) as s:
        items = []
        for i, (ex, ra, rb) in enumerate(zip(examples, resp_a, resp_b, strict=True)):
            (prompt, ra, rb), n = strip_nul(ex.prompt_text, ra, rb)
            stripped += n
            items.append(StudyItem(study_id=study_id, position=i, prompt=prompt, response_a=ra, response_b=rb,
                                   a_on_left=rng.random() < 0.5, leaks=leaks(ra) + leaks(rb)))
        s.add_all(items)
        flagged = sum(1 for it in items if it.leaks)
        s.get(Study, study_id).status = StudyStatus.review if flagged else StudyStatus.open
    if stripped:
        log.warning("study %s: removed %d NUL characters from prompts and responses", study_id, stripped)
    return {"items": len(items), "flagged": flagged, "nul_removed": stripped,
            **judge_items(ctx, study_id, job_id, claim)}


def strip_nul(*texts: str) -> tuple[list[str], int]:
    """The texts without NUL characters, and how many were removed. A model can emit U+0000, which
    PostgreSQL refuses in text columns (the whole job would fail); it carries no meaning to a reader."""
    out = [(t or "").replace("\x00", "") for t in texts]
    return out, sum(len(t or "") - len(o) for t, o in zip(texts, out, strict=True))


def _resolved(session: Session, spec: dict) -> dict:
    """A model spec with its checkpoint turned into a folder, so generation needs no session."""
    if spec.get("checkpoint_id") is not None:
        return {**spec, "path": checkpoint_student(session.get(Checkpoint, spec['checkpoint_id']).path)}
    return spec
