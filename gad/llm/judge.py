"""LLM-as-judge, the paper's protocol.

1. The judge writes its own reference answer to each test prompt (cached).
2. For each evaluated response, the judge sees the question, the two answers as "Assistant 1"
   and "Assistant 2", and the review instruction below (the FastChat/Vicuna review prompt the
   paper's evaluation follows); it answers with two 1-10 scores on one line, then an explanation.
3. Headline score = 100 * sum(model scores) / (sum(model) + sum(reference)); 50 = on par with the
   judge's own reference. NOTE: this formula is INFERRED from the paper's published numbers
   (about 44-52, teacher 51.7); the paper does not state it.

Judges have a position bias (verdicts flip for ~13% of pairs when swapped, per FastChat's data),
so both presentation orders can be asked and averaged; the flip rate is reported.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

JUDGE_SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
JUDGE_INSTRUCTION = (
    "We would like to request your feedback on the performance of two AI assistants in response to the "
    "user question displayed above.\nPlease rate the helpfulness, relevance, accuracy, level of details of "
    "their responses. Each assistant receives an overall score on a scale of 1 to 10, where a higher score "
    "indicates better overall performance.\nPlease first output a single line containing only two values "
    "indicating the scores for Assistant 1 and 2, respectively. The two scores are separated by a space. In "
    "the subsequent line, please provide a comprehensive explanation of your evaluation, avoiding any "
    "potential bias and ensuring that the order in which the responses were presented does not affect your "
    "judgment.")
FORMULA_NOTE = ("score = 100 * sum(model) / (sum(model) + sum(judge reference)); 50 = on par with the judge's "
                "reference. The formula is inferred from the paper's published numbers, not stated by it. "
                "Order: Assistant 1 = the evaluated response, Assistant 2 = the judge's reference "
                "(--both-orders also asks the swapped order and averages).")


def judge_messages(question: str, answer_1: str, answer_2: str) -> list[dict]:
    user = (f"[Question]\n{question}\n\n"
            f"[The Start of Assistant 1's Answer]\n{answer_1}\n\n[The End of Assistant 1's Answer]\n\n"
            f"[The Start of Assistant 2's Answer]\n{answer_2}\n\n[The End of Assistant 2's Answer]\n\n"
            f"[System]\n{JUDGE_INSTRUCTION}\n\n")
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


_NUM = r"(10(?:\.0+)?|\d(?:\.\d+)?)"
_PAIR_LINE = re.compile(rf"^\s*(?:scores?\s*[:=]?\s*)?{_NUM}\s*(?:/\s*10)?\s*(?:[,;/|&-]|and|vs\.?|\s)\s*{_NUM}"
                        rf"\s*(?:/\s*10)?\s*\.?\s*$", re.I)
_LABELLED = [re.compile(rf"assistant\s*{k}\b[^\d\n]{{0,40}}?{_NUM}\s*(?:/\s*10|out of 10)?", re.I) for k in (1, 2)]


def _clean(line: str) -> str:
    return re.sub(r"[*_`#>]", "", line).strip()


def parse_scores(text: str | None) -> tuple[float, float] | None:
    """Two 1-10 scores from a judge's answer, or None. Handles the shapes judges really give:
    "8 7", "8/10 7/10", "8, 7", "Scores: 8 and 7", "**8** **7**", "Assistant 1: 8\\nAssistant 2: 7",
    "Assistant 1 receives a score of 8, Assistant 2 a 7", leading blank lines, decimals.
    """
    if not text:
        return None
    lines = [_clean(line) for line in text.strip().splitlines() if _clean(line)]
    if not lines:
        return None
    m = _PAIR_LINE.match(lines[0])
    if m:
        return _valid(m.group(1), m.group(2))
    head = "\n".join(lines[:4])
    a, b = _LABELLED[0].search(head), _LABELLED[1].search(head)
    if a and b:
        return _valid(a.group(1), b.group(1))
    first = re.sub(r"assistant\s*[12]", "", lines[0], flags=re.I)
    nums = re.findall(r"(?<![\d.])(\d+(?:\.\d+)?)(?![\d.])", first)  # whole numbers only: "11" is not "1"
    if len(nums) == 2:
        return _valid(*nums)
    return None


def _valid(a: str, b: str) -> tuple[float, float] | None:
    x, y = float(a), float(b)
    return (x, y) if 0 <= x <= 10 and 0 <= y <= 10 else None


# ----------------------------------------------------------------------------------------------
# Aggregates
# ----------------------------------------------------------------------------------------------
def aggregate_score(model_scores: list[float], reference_scores: list[float]) -> float:
    total = sum(model_scores) + sum(reference_scores)
    return 100.0 * sum(model_scores) / total if total else float("nan")


def bootstrap_interval(model_scores: list[float], reference_scores: list[float], *, samples: int = 1000,
                       seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap over prompts of the aggregate score."""
    n = len(model_scores)
    if n == 0:
        return float("nan"), float("nan")
    rng = random.Random(seed)
    stats = []
    for _ in range(samples):
        idx = [rng.randrange(n) for _ in range(n)]
        stats.append(aggregate_score([model_scores[i] for i in idx], [reference_scores[i] for i in idx]))
    stats.sort()
    lo = stats[int((1 - level) / 2 * samples)]
    hi = stats[min(samples - 1, int((1 + level) / 2 * samples))]
    return lo, hi


def verdict(model: float, reference: float) -> str:
    return "win" if model > reference else "loss" if model < reference else "tie"


@dataclass
class JudgeSummary:
    score: float
    ci_low: float
    ci_high: float
    mean_model: float
    mean_reference: float
    judged: int                 # prompts with a usable verdict
    unparsed: int               # verdicts the judge gave but with no two scores in them
    flip_rate: float | None = None
    failed: int = 0             # verdicts never obtained: the request failed, or no judge reference

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def summarise(pairs: list[tuple[float, float]], unparsed: int, flips: list[bool] | None = None,
              seed: int = 0, failed: int = 0) -> JudgeSummary:
    m = [p[0] for p in pairs]
    r = [p[1] for p in pairs]
    lo, hi = bootstrap_interval(m, r, seed=seed)
    return JudgeSummary(score=aggregate_score(m, r), ci_low=lo, ci_high=hi,
                        mean_model=sum(m) / len(m) if m else float("nan"),
                        mean_reference=sum(r) / len(r) if r else float("nan"),
                        judged=len(pairs), unparsed=unparsed,
                        flip_rate=(sum(flips) / len(flips)) if flips else None, failed=failed)


# More unusable verdicts than this share make a table whose scores mean nothing: say so, loudly.
UNUSABLE_LIMIT = 0.5


def verdict_health(rows: list[dict]) -> dict:
    """Counts over a whole table: usable, failed and unparsed verdicts, and whether most are unusable."""
    failed = sum(r.get("failed", 0) for r in rows)
    unparsed = sum(r["unparsed"] for r in rows)
    # verdicts asked (both orders count twice); `judged` counts prompts, so it is not used here
    total = sum(r.get("verdicts", r["judged"] + r.get("failed", 0) + r["unparsed"]) for r in rows)
    usable = total - failed - unparsed
    share = (failed + unparsed) / total if total else 1.0
    return {"usable": usable, "failed": failed, "unparsed": unparsed, "total": total,
            "unusable_share": share, "mostly_unusable": share > UNUSABLE_LIMIT}


# ----------------------------------------------------------------------------------------------
# Judge-bias guards: length and self-preference
# ----------------------------------------------------------------------------------------------
def win_rate(pairs: list[tuple[float, float]]) -> float:
    """Share of prompts where the model's score beats the reference's, ties counted half."""
    if not pairs:
        return float("nan")
    return sum(1.0 if m > r else 0.5 if m == r else 0.0 for m, r in pairs) / len(pairs)


def length_controlled_win_rates(models: dict[str, tuple[list[tuple[float, float]], list[float], list[float]]], *,
                                l2: float = 1e-2, iterations: int = 100) -> dict[str, float]:
    """The win rate each model would have if its answers were as long as the reference's (the idea of
    length-controlled AlpacaEval, with one covariate). One logistic regression over every model's prompts:
    P(win) = sigmoid(a_model + b * x), x = tanh(length difference / the pooled standard deviation of length
    differences), a slope b shared by the models (a model whose answers are all longer than the reference's
    cannot tell its own slope from its intercept; the others can). Reported: sigmoid(a_model), the prediction at
    equal lengths. Ties count as half a win (a fractional target). Judges prefer longer answers, so a student that
    only learned to be long keeps its raw win rate and not this one.

    models: name -> (pairs (model score, reference score) per prompt, model answer words, reference answer words).
    A small L2 penalty keeps the fit finite when lengths separate the wins exactly."""
    import numpy as np

    names = [m for m, (pairs, _, _) in models.items() if pairs]
    if not names:
        return {m: float("nan") for m in models}
    rows, y, diffs = [], [], []
    for k, name in enumerate(names):
        pairs, ml, rl = models[name]
        for (ms, rs), a, b in zip(pairs, ml, rl):
            rows.append(k)
            y.append(1.0 if ms > rs else 0.5 if ms == rs else 0.0)
            diffs.append(a - b)
    d = np.asarray(diffs, dtype=float)
    sd = d.std()
    x = np.tanh(d / sd) if sd > 0 else np.zeros_like(d)
    X = np.zeros((len(y), len(names) + 1))
    X[np.arange(len(y)), rows] = 1.0
    X[:, -1] = x
    Y = np.asarray(y)
    theta = np.zeros(X.shape[1])
    for _ in range(iterations):  # Newton's method on the penalised log-likelihood
        p = 1 / (1 + np.exp(-(X @ theta)))
        grad = X.T @ (Y - p) - l2 * theta
        hess = (X * (p * (1 - p))[:, None]).T @ X + l2 * np.eye(len(theta))
        step = np.linalg.solve(hess, grad)
        theta += step
        if np.abs(step).sum() < 1e-10:
            break
    out = {name: float(1 / (1 + np.exp(-theta[k]))) for k, name in enumerate(names)}
    return {m: out.get(m, float("nan")) for m in models}


# Model families by name, for the self-preference check (a judge rates its own family's text higher).
FAMILIES = {"gpt": ("gpt-", "chatgpt", "o1", "o3", "o4", "openai"), "claude": ("claude", "anthropic"),
            "gemini": ("gemini", "gemma"), "llama": ("llama",), "qwen": ("qwen", "qwq"), "mistral": ("mistral",
            "mixtral", "ministral"), "deepseek": ("deepseek",), "phi": ("phi-",), "command": ("command-r", "cohere")}


def model_family(name: str | None) -> str | None:
    """The family a model id belongs to (`openai/gpt-4o-mini` -> gpt), or None when unknown. `name` may hold
    several words (a label and a path): the first one that names a family decides."""
    for word in re.split(r"[\s=/]+", (name or "").lower()):
        for family, marks in FAMILIES.items():
            if any(word.startswith(m) or f"-{m}" in word for m in marks):
                return family
    return None


def self_preference_warning(judge_model: str | None, teacher_model: str | None) -> str | None:
    """A plain warning when the judge and the teacher share a family: the judge may prefer the teacher's
    style, and so the student that imitates it best, over what is better."""
    fam = model_family(judge_model)
    if fam is None or fam != model_family(teacher_model):
        return None
    return (f"the judge ({judge_model}) and the teacher ({teacher_model}) are both {fam} models: judges tend to "
            f"prefer text of their own family, so scores may favour imitating the teacher's style. Prefer a judge "
            f"of another family, or compare with one.")
