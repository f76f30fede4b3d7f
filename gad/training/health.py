"""Alarms a practitioner wants while a GAD run trains, computed from its per-step metric records.

Pure functions on records (dicts with `step`, `stage` and metric names), so the CLI (curves.png,
result.json), the REST API and the dashboard all raise the same alarms with the same thresholds.
No plotting library is imported here.

    strong discriminator  D accuracy pinned near 100%: the reward carries no signal (reported failure mode)
    length drift          student responses far longer/shorter than the teacher's: reward hacking
    KL blow-up            the policy left its reference far behind: lower the lr or raise kl_coef
    D at chance           held-out pairs: D orders teacher above student no better than a coin (gad.training.monitor)
A stalled worker is judged by the studio from heartbeats, not from metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean

from gad.training.metric_catalog import M

STRONG_DISC_ACCURACY = 0.95
WINDOW = 20
STRONG_DISC_WINDOW = WINDOW
LENGTH_RATIO_BAND = (0.5, 2.0)
KL_LIMIT = 1.0  # nats per token (k3 estimate); the paper's runs stay far below
CHANCE_EVALS = 3       # consecutive held-out checks of D (gad.training.monitor) ...
CHANCE_MARGIN = 0.05   # ... whose accuracy must beat 0.5 by this much to count as better than chance


@dataclass(frozen=True)
class Alarm:
    kind: str       # strong_discriminator | length_drift | kl_blowup | disc_at_chance | stalled
    message: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message}


def _recent(records: list[dict], key: str, stage: str | None = None) -> list[float]:
    values = [r[key] for r in records if r.get(key) is not None and (stage is None or r.get("stage") == stage)]
    return values[-WINDOW:] if len(values) >= WINDOW else []


def run_alarms(records: list[dict]) -> list[Alarm]:
    """Alarms over the last WINDOW steps that have the metric (too few steps: no alarm)."""
    alarms = []
    acc = _recent(records, M.DISC_ACCURACY, "adversarial")
    if acc and fmean(acc) > STRONG_DISC_ACCURACY:
        alarms.append(Alarm("strong_discriminator", f"discriminator accuracy averaged {fmean(acc):.0%} over the "
                            f"last {WINDOW} adversarial steps: D wins too easily and the reward carries little "
                            f"signal (try a lower --disc-lr, a longer warmup, or check for formatting leaks)"))
    pairs = [(r[M.STUDENT_LENGTH], r[M.TEACHER_LENGTH]) for r in records
             if r.get(M.STUDENT_LENGTH) is not None and r.get(M.TEACHER_LENGTH)]
    if len(pairs) >= WINDOW:
        ratio = fmean(s for s, _ in pairs[-WINDOW:]) / fmean(t for _, t in pairs[-WINDOW:])
        lo, hi = LENGTH_RATIO_BAND
        if not lo <= ratio <= hi:
            alarms.append(Alarm("length_drift", f"student responses are {ratio:.2f}x the teacher's length over the "
                                f"last {WINDOW} steps: the student may be gaming the discriminator (reward "
                                f"hacking); check the rollouts"))
    kl = _recent(records, "kl")
    if kl and fmean(kl) > KL_LIMIT:
        alarms.append(Alarm("kl_blowup", f"KL to the reference averaged {fmean(kl):.2f} over the last {WINDOW} "
                            f"steps: the policy is running away (lower --lr or raise --kl-coef)"))
    at_chance, acc = not_better_than_chance(records)
    if at_chance:
        steps = [r["step"] for r in records if r.get(M.DISC_EVAL_ACCURACY) is not None][-len(acc):]
        alarms.append(Alarm("disc_at_chance", (
            f"the discriminator is not better than chance on held-out pairs: accuracy "
            f"{', '.join(f'{a:.2f}' for a in acc)} at steps {', '.join(map(str, steps))} (0.5 is a coin flip), so "
            f"its reward is noise to the student. Try: a longer discriminator warmup (disc_warmup_steps, with "
            f"disc_warmup_target), several discriminator steps per policy step (disc_steps_per_step), a policy lr "
            f"below disc_lr, or more teacher responses per prompt. If most samples equal the teacher's "
            f"(disc_eval_identical), the student already imitates the teacher and there is little left to learn")))
    return alarms


def not_better_than_chance(records: list[dict]) -> tuple[bool, list[float]]:
    """True when the last CHANCE_EVALS held-out checks all scored accuracy <= 0.5 + CHANCE_MARGIN (a constant
    D scores exactly 0.5). Checks where every sample equalled the teacher's (no accuracy) are skipped: there
    was nothing to tell apart. Returns the accuracies read."""
    acc = [r[M.DISC_EVAL_ACCURACY] for r in records if r.get(M.DISC_EVAL_ACCURACY) is not None][-CHANCE_EVALS:]
    if len(acc) < CHANCE_EVALS:
        return False, acc
    return all(a <= 0.5 + CHANCE_MARGIN for a in acc), acc


def health_warnings(records: list[dict]) -> list[str]:
    return [a.message for a in run_alarms(records)]
