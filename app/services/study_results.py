"""A study's results: win/tie/loss counts and rates with 95% Wilson intervals, per-annotator counts,
agreement between annotators (Fleiss' kappa), the LLM judge's disagreement rates (study_judge), and
every vote exported with the models unblinded (researchers only)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter, defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import StudyItem, User, Vote
from app.enums import VoteChoice
from app.errors import InvalidInput
from app.services.studies import get_study, model_label
from app.services.study_judge import disagreement


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95% Wilson score interval of a proportion k/n (None for n = 0)."""
    if n == 0:
        return None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def fleiss_kappa(ratings: list[dict[str, int]]) -> float | None:
    """Fleiss' kappa over items each rated by the same number (>= 2) of annotators.
    ratings: one {category: count} per item. None when undefined (too few items, or no variation)."""
    if not ratings:
        return None
    n = sum(ratings[0].values())
    if n < 2 or any(sum(r.values()) != n for r in ratings):
        return None
    cats = sorted({c for r in ratings for c in r})
    big_n = len(ratings)
    p_j = [sum(r.get(c, 0) for r in ratings) / (big_n * n) for c in cats]
    p_i = [(sum(v * v for v in r.values()) - n) / (n * (n - 1)) for r in ratings]
    p_bar, p_e = sum(p_i) / big_n, sum(p * p for p in p_j)
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1 - p_e)


def study_results(session: Session, study_id: int) -> dict:
    study = get_study(session, study_id)
    rows = session.execute(select(Vote.item_id, Vote.choice, Vote.both_bad, User.name)
                           .join(StudyItem, StudyItem.id == Vote.item_id).join(User, User.id == Vote.annotator_id)
                           .where(StudyItem.study_id == study_id, StudyItem.dropped.is_(False))).all()
    counted = [r for r in rows if r.choice != VoteChoice.skip]
    counts = Counter(r.choice for r in counted)
    total = len(counted)
    out = {"study_id": study_id, "model_a": model_label(study.model_a), "model_b": model_label(study.model_b),
           "win": counts[VoteChoice.a], "tie": counts[VoteChoice.tie], "loss": counts[VoteChoice.b], "votes": total,
           "both_bad": sum(1 for r in counted if r.both_bad), "skipped": len(rows) - total}
    for key, k in (("win", out["win"]), ("tie", out["tie"]), ("loss", out["loss"])):
        out[f"{key}_rate"] = k / total if total else None
        ci = wilson(k, total)
        out[f"{key}_ci"] = list(ci) if ci else None
    per = defaultdict(Counter)
    for r in rows:
        per[r.name][r.choice] += 1
    out["annotators"] = [{"annotator": name, "win": c[VoteChoice.a], "tie": c[VoteChoice.tie], "loss": c[VoteChoice.b],
                          "skipped": c[VoteChoice.skip]} for name, c in sorted(per.items())]
    by_item = defaultdict(Counter)
    for r in counted:
        by_item[r.item_id][r.choice] += 1
    k_items = [dict(c) for c in by_item.values() if sum(c.values()) == study.annotators_per_item]
    out["agreement"] = {"fleiss_kappa": fleiss_kappa(k_items) if study.annotators_per_item >= 2 else None,
                        "items": len(k_items), "annotators_per_item": study.annotators_per_item}
    found = disagreement(session, study)
    found.pop("items")  # ids are for the queue; results give counts and rates
    out["judge"] = {**found, "queue_order": (study.settings or {}).get("queue_order", "standard")}
    return out


def export_votes(session: Session, study_id: int, fmt: str) -> str:
    """Every vote with the item it is about and the models unblinded (researchers only)."""
    study = get_study(session, study_id)
    a, b = model_label(study.model_a), model_label(study.model_b)
    rows = session.execute(select(StudyItem, Vote, User.name).join(Vote, Vote.item_id == StudyItem.id)
                           .join(User, User.id == Vote.annotator_id).where(StudyItem.study_id == study_id)
                           .order_by(StudyItem.position, Vote.id)).all()
    records = [{"study_id": study_id, "position": it.position, "item_id": it.id, "annotator": name,
                "choice": v.choice, "winner": {"a": a, "b": b}.get(v.choice, v.choice), "both_bad": v.both_bad,
                "model_a": a, "model_b": b, "left": a if it.a_on_left else b, "prompt": it.prompt,
                "response_a": it.response_a, "response_b": it.response_b, "voted_at": v.created_at.isoformat()}
               for it, v, name in rows]
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if fmt != "csv":
        raise InvalidInput("format must be csv or jsonl", field="format")
    buf = io.StringIO()
    fields = list(records[0]) if records else ["study_id", "position", "item_id", "annotator", "choice"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(records)
    return buf.getvalue()
