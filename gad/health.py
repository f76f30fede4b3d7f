"""Alarms a practitioner wants while a GAD run trains, computed from its per-step metric records.

Pure functions on records (dicts with `step`, `stage` and metric names), so the CLI (curves.png,
result.json), the REST API and the dashboard all raise the same alarms with the same thresholds.
No plotting library is imported here.

    strong discriminator  D accuracy pinned near 100%: the reward carries no signal (reported failure mode)
    length drift          student responses far longer/shorter than the teacher's: reward hacking
    KL blow-up            the policy left its reference far behind: lower the lr or raise kl_coef
A stalled worker is judged by the studio from heartbeats, not from metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean

STRONG_DISC_ACCURACY = 0.95
WINDOW = 20
STRONG_DISC_WINDOW = WINDOW
LENGTH_RATIO_BAND = (0.5, 2.0)
KL_LIMIT = 1.0  # nats per token (k3 estimate); the paper's runs stay far below


@dataclass(frozen=True)
class Alarm:
    kind: str       # strong_discriminator | length_drift | kl_blowup | stalled
    message: str

    def as_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message}


def _recent(records: list[dict], key: str, stage: str | None = None) -> list[float]:
    values = [r[key] for r in records if r.get(key) is not None and (stage is None or r.get("stage") == stage)]
    return values[-WINDOW:] if len(values) >= WINDOW else []


def run_alarms(records: list[dict]) -> list[Alarm]:
    """Alarms over the last WINDOW steps that have the metric (too few steps: no alarm)."""
    alarms = []
    acc = _recent(records, "disc_accuracy", "adversarial")
    if acc and fmean(acc) > STRONG_DISC_ACCURACY:
        alarms.append(Alarm("strong_discriminator", f"discriminator accuracy averaged {fmean(acc):.0%} over the "
                            f"last {WINDOW} adversarial steps: D wins too easily and the reward carries little "
                            f"signal (try a lower --disc-lr, a longer warmup, or check for formatting leaks)"))
    pairs = [(r["student_length"], r["teacher_length"]) for r in records
             if r.get("student_length") is not None and r.get("teacher_length")]
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
    return alarms


def health_warnings(records: list[dict]) -> list[str]:
    return [a.message for a in run_alarms(records)]
