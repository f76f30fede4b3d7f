"""Active annotation: an LLM judge's verdicts on a study's items, and the items where it disagrees.

A study created with a judge endpoint has each item judged twice when its items are built: once with
response A as "Assistant 1", once with B first (gad.llm.judge's prompt). Per item and order the judge
prefers a, b or tie (None: no usable answer); these verdicts live in Study.settings["judge"] as
{item id: {"a_first": ..., "b_first": ...}}, so no table holds them twice.

Two kinds of disagreement make an item worth a human vote first:
- the judge's two orders disagree (its verdict depends on position, not on the answers);
- the judge's verdict (both orders agreeing) differs from the humans' majority on the item.
With the study option queue_order "disagreement", study_queue.next_item hands those items out first.
The judge runs in the study's job, under its cost cap (app.services.costs), like a collection.
The annotator sees none of this: the blind view carries neither verdicts nor model names.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Study, StudyItem, Vote
from app.db.session import session_scope
from app.enums import VoteChoice
from app.services.costs import CostCap, request_bound
from gad.llm.judge import judge_messages, parse_scores

# standard: fewest votes first, then the dataset's order; disagreement: items the judge disagrees on first.
QUEUE_ORDERS = ("standard", "disagreement")
ORDERS = ("a_first", "b_first")


def preference(text: str | None, order: str) -> str | None:
    """'a', 'b' or 'tie' from a judge's answer in one presentation order; None when it gave no two scores."""
    scores = parse_scores(text)
    if scores is None:
        return None
    a, b = scores if order == "a_first" else scores[::-1]
    return "a" if a > b else "b" if b > a else "tie"


def record_verdicts(session: Session, study: Study, answers: dict[int, dict[str, str | None]]) -> dict:
    """Store the judge's answers (item id -> {order: raw answer text}) as per-order preferences."""
    verdicts = {str(item_id): {o: preference(texts.get(o), o) for o in ORDERS} for item_id, texts in answers.items()}
    # A new dict: the JSON column notices a reassignment, not a change inside it.
    study.settings = {**(study.settings or {}), "judge": verdicts}
    session.flush()
    return verdicts


def judge_verdict(v: dict) -> str | None:
    """The judge's verdict on an item: the preference its usable orders share; None when they split or
    neither order was usable."""
    got = {v.get(o) for o in ORDERS} - {None}
    return got.pop() if len(got) == 1 else None


def orders_split(v: dict) -> bool:
    return all(v.get(o) is not None for o in ORDERS) and v["a_first"] != v["b_first"]


def human_majority(counts: Counter) -> str | None:
    """The humans' most frequent choice (a, b or tie) on an item; None with no votes or a tie for first place."""
    top = counts.most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    return top[0][0]


def disagreement(session: Session, study: Study) -> dict:
    """Where the judge disagrees, over the study's kept items: with itself (its orders; the rate is over items
    judged in both orders) and with the humans (over items with a judge verdict and a human majority).
    `items`: the ids of every disagreeing item."""
    verdicts = (study.settings or {}).get("judge") or {}
    ids = list(session.scalars(select(StudyItem.id).where(StudyItem.study_id == study.id,
                                                          StudyItem.dropped.is_(False))))
    votes: dict[int, Counter] = defaultdict(Counter)
    for item_id, choice, n in session.execute(
            select(Vote.item_id, Vote.choice, func.count()).join(StudyItem, StudyItem.id == Vote.item_id)
            .where(StudyItem.study_id == study.id, Vote.choice != VoteChoice.skip).group_by(Vote.item_id, Vote.choice)):
        votes[item_id][choice] = n
    judged = [i for i in ids if all(verdicts.get(str(i), {}).get(o) is not None for o in ORDERS)]
    split = [i for i in judged if orders_split(verdicts[str(i)])]
    compared = [i for i in ids if judge_verdict(verdicts.get(str(i), {})) and human_majority(votes[i])]
    humans = [i for i in compared if judge_verdict(verdicts[str(i)]) != human_majority(votes[i])]
    return {"judged": len(judged), "orders_disagree": len(split),
            "orders_disagree_rate": len(split) / len(judged) if judged else None,
            "compared": len(compared), "humans_disagree": len(humans),
            "humans_disagree_rate": len(humans) / len(compared) if compared else None,
            "items": sorted(set(split) | set(humans))}


def judge_items(ctx, study_id: int, job_id: int, claim: str | None) -> dict:
    """The worker's part: ask the study's judge endpoint about every kept item in both orders (through the
    studio's response cache and ledger) and record the verdicts. {} when the study has no judge or is judged.

    The study job's row shows done/total verdicts, tokens and cost (across attempts). Under the job's cost
    cap (`params["max_cost_usd"]`), no verdict is asked that could take the spend past the cap by its
    projected bound (costs.request_bound): CostCapReached pauses the job before it (the verdicts paid so
    far stay in the cache), and the job resumed under a raised cap asks only the rest."""
    from app.db.models import Endpoint as EndpointRow
    from app.db.models import Job
    from app.services.endpoints import to_gad
    from app.services.progress import JobProgress
    from app.services.response_store import DbResponseStore
    from gad.llm.api_client import ChatRunner

    with ctx.sessions() as s:
        study = s.get(Study, study_id)
        endpoint_id = (study.settings or {}).get("judge_endpoint_id")
        if endpoint_id is None or (study.settings or {}).get("judge") is not None:
            return {}
        judge = to_gad(s.get(EndpointRow, endpoint_id), ctx.settings)
        items = [(it.id, it.prompt, it.response_a, it.response_b) for it in s.scalars(
            select(StudyItem).where(StudyItem.study_id == study_id, StudyItem.dropped.is_(False))
            .order_by(StudyItem.position))]
        job = s.get(Job, job_id)
        before, cap = dict(job.stats or {}), (job.params or {}).get("max_cost_usd")
    requests = [m for _, prompt, a, b in items for m in (judge_messages(prompt, a, b), judge_messages(prompt, b, a))]
    progress = JobProgress(ctx.sessions, job_id, claim, len(requests), before)
    limit = (CostCap(cap, progress.spent, next_cost=request_bound(judge, requests), what="verdict")
             if cap is not None else None)
    runner = ChatRunner(judge, DbResponseStore(ctx.sessions, endpoint_id, limit), on_result=progress)
    progress.watch(runner.ledger)  # from the start: the cap reads this attempt's spend from it
    try:
        results = runner.run(requests)
    finally:
        progress.write()  # the exact figures, also when the cap (or the endpoint) stopped the judge
    answers = {item_id: {o: (r.get("response") if r["status"] == "ok" else None)
                         for o, r in zip(ORDERS, results[2 * k:2 * k + 2], strict=True)}
               for k, (item_id, *_rest) in enumerate(items)}
    with session_scope(ctx.sessions) as s:
        verdicts = record_verdicts(s, s.get(Study, study_id), answers)
    return {"judged": sum(1 for v in verdicts.values() if judge_verdict(v) is not None or orders_split(v)),
            "ledger": progress.figures()}
