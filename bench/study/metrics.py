"""Small pure statistics for distillation studies (bench/quality_study.py), tested on hand-computed values.

  rankdata, spearman        rank correlation with average ranks for ties (a discriminator's scores
                            against the teacher's log-likelihood within one group of samples)
  pairwise_auc              does a score put valid answers above invalid ones
  distinct_n                diversity of a set of texts
  normalise, total_variation, kl_divergence, entropy
                            distances between answer distributions (mode seeking vs covering)
  mean_sd, standard_error, paired_difference, paired_verdict
                            seed statistics: is a difference between methods larger than seed noise,
                            and is it a win, a tie or a loss?
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

# Two-sided 5% critical values of Student's t, by degrees of freedom (1..30); beyond 30, 1.96 is close enough.
_T_975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
          2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
          2.045, 2.042]


def t_critical(df: int) -> float:
    """Two-sided 5% critical value of Student's t with `df` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError("t_critical needs at least 1 degree of freedom")
    return _T_975[df - 1] if df <= len(_T_975) else 1.96


def rankdata(values: Sequence[float]) -> list[float]:
    """Ranks 1..n, ties sharing the mean of the ranks they span: [10, 20, 20, 5] -> [2, 3.5, 3.5, 1]."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation; None when there are fewer than 2 points or either side is constant."""
    if len(x) != len(y):
        raise ValueError(f"pearson needs paired values, got {len(x)} and {len(y)}")
    n = len(x)
    if n < 2:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson on average ranks); None when undefined (constant side)."""
    if len(x) != len(y):
        raise ValueError(f"spearman needs paired values, got {len(x)} and {len(y)}")
    return pearson(rankdata(x), rankdata(y))


def pairwise_auc(positive: Sequence[float], negative: Sequence[float]) -> float | None:
    """P(score of a positive > score of a negative) over all pairs, ties counting 1/2; None without pairs."""
    if not positive or not negative:
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct whitespace n-grams / all n-grams over the texts (0 when there is none)."""
    grams, total = set(), 0
    for t in texts:
        w = t.split()
        for i in range(len(w) - n + 1):
            grams.add(tuple(w[i:i + n]))
            total += 1
    return len(grams) / total if total else 0.0


def normalise(counts: Mapping[str, float]) -> dict[str, float]:
    """Counts or weights -> probabilities summing to 1."""
    total = sum(counts.values())
    if total <= 0:
        raise ValueError("normalise needs a positive total")
    return {k: v / total for k, v in counts.items()}


def total_variation(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Half the L1 distance between two distributions over the union of their outcomes (missing = 0)."""
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def kl_divergence(p: Mapping[str, float], q: Mapping[str, float], floor: float = 1e-6) -> float:
    """KL(p || q) in nats; outcomes where p is 0 add nothing, q is floored at `floor` so the value is finite."""
    return sum(pv * math.log(pv / max(q.get(k, 0.0), floor)) for k, pv in p.items() if pv > 0)


def entropy(p: Mapping[str, float]) -> float:
    """Shannon entropy in nats."""
    return -sum(v * math.log(v) for v in p.values() if v > 0)


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1); sd is 0 for a single value."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_sd needs at least one value")
    m = sum(values) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return m, sd


def standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean: sample sd / sqrt(n)."""
    return mean_sd(values)[1] / math.sqrt(len(values))


def paired_difference(a: Sequence[float], b: Sequence[float]) -> dict:
    """a - b paired by seed: mean, sd, n, the 95% half-width t * sd / sqrt(n), and whether the
    difference exceeds seed noise (|mean| > half-width, i.e. a two-sided paired t-test at 5%)."""
    if len(a) != len(b):
        raise ValueError(f"paired_difference needs one value per seed on both sides, got {len(a)} and {len(b)}")
    d = [x - y for x, y in zip(a, b)]
    m, sd = mean_sd(d)
    n = len(d)
    half = t_critical(n - 1) * sd / math.sqrt(n) if n > 1 else math.inf
    return {"mean": m, "sd": sd, "n": n, "half_width": half, "exceeds_seed_noise": abs(m) > half}


def paired_verdict(d: Mapping, better: str, least: float) -> str:
    """'win' / 'loss' for the first side of a `paired_difference` when its 95% interval excludes 0 and
    |mean| >= `least`; otherwise 'tie'. `better` is 'lower' or 'higher' (which direction is good)."""
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")
    if not d["exceeds_seed_noise"] or abs(d["mean"]) < least:
        return "tie"
    return "win" if (d["mean"] < 0) == (better == "lower") else "loss"
