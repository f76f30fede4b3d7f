"""Diagnostics the paper uses beside the judge: n-gram overlap F1 and ROUGE-L against the teacher,
response lengths, and checkpoint selection. ROUGE-L is only a diagnostic: GAD can score lower on
it than SeqKD while being better (it does not copy the teacher's wording).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter


def words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text.lower())


def ngram_f1(prediction: str, reference: str, n: int) -> float:
    """F1 of clipped n-gram overlap between two texts (0 when either has no n-gram)."""
    p, r = words(prediction), words(reference)
    pc = Counter(tuple(p[i:i + n]) for i in range(len(p) - n + 1))
    rc = Counter(tuple(r[i:i + n]) for i in range(len(r) - n + 1))
    overlap = sum((pc & rc).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(pc.values()), overlap / sum(rc.values())
    return 2 * precision * recall / (precision + recall)


def _lcs(a: list[str], b: list[str]) -> int:
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (beta = 1) on lower-cased word tokens."""
    p, r = words(prediction), words(reference)
    lcs = _lcs(p, r)
    if not lcs:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def length_stats(texts: list[str]) -> dict[str, float]:
    lengths = [len(t.split()) for t in texts]
    if not lengths:
        return {"mean": 0.0, "median": 0.0, "p90": 0.0, "max": 0.0}
    ordered = sorted(lengths)
    return {"mean": statistics.fmean(lengths), "median": statistics.median(lengths),
            "p90": float(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]), "max": float(ordered[-1])}


def overlap_report(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean n-gram F1 (n = 1..4) and ROUGE-L of predictions against the teacher's responses."""
    out = {f"ngram_f1_{n}": statistics.fmean(ngram_f1(p, r, n) for p, r in zip(predictions, references))
           for n in range(1, 5)}
    out["rouge_l"] = statistics.fmean(rouge_l(p, r) for p, r in zip(predictions, references))
    return out


# The paper's guard against the judge's length bias: a checkpoint is eligible when its mean response
# length stays within this ratio of the teacher's (either way).
MAX_LENGTH_RATIO = 1.5


def length_range(teacher_length: float, max_length_ratio: float = MAX_LENGTH_RATIO) -> tuple[float, float]:
    """The mean lengths a checkpoint may have to be selected: teacher's / ratio .. teacher's x ratio."""
    return teacher_length / max_length_ratio, teacher_length * max_length_ratio


def model_means(rows: list[dict], exclude: str | None = None) -> list[dict]:
    """Per model (rows' "model"), the mean `score` and `length` over its sets; rows with no score (None or
    NaN: nothing judged) or no length are left out, and so is the model `exclude` (e.g. the teacher)."""
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        score, length = r.get("score"), r.get("length")
        if r["model"] != exclude and score is not None and score == score and length is not None:
            by_model.setdefault(r["model"], []).append(r)
    return [{"model": m, "score": statistics.fmean(x["score"] for x in rs),
             "length": statistics.fmean(x["length"] for x in rs)} for m, rs in by_model.items()]


def best_in_length_range(rows: list[dict], lo: float, hi: float) -> dict | None:
    """Best `score` among rows whose `length` lies in [lo, hi] (None if none does)."""
    eligible = [r for r in rows if lo <= r["length"] <= hi and r.get("score") == r.get("score")]
    return max(eligible, key=lambda r: r["score"]) if eligible else None


def select_checkpoint(rows: list[dict], teacher_length: float,
                      max_length_ratio: float = MAX_LENGTH_RATIO) -> dict | None:
    """Best `score` among rows whose mean `length` stays within max_length_ratio of the teacher's.

    Guards against the judge's length bias: a checkpoint that got long can win on score alone.
    """
    return best_in_length_range(rows, *length_range(teacher_length, max_length_ratio))
