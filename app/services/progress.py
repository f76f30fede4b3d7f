"""The database side of running work: a training's gad Progress written as rows and its worker.log, and a
job's live statistics (JobProgress).

`DbProgress` turns each step's metrics into RunStep + RunMetric rows and updates the run's step,
stage and ETA; samples and checkpoints become rows too; `should_stop` reads the cancel flag.
The heartbeat thread that keeps a claimed row alive is app/services/lifecycle.py's.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Checkpoint, Job, Run, RunMetric, RunStep, Sample, utcnow
from app.db.session import session_scope
from gad.training.progress import Progress


class RunLog:
    """The run's worker.log: what the worker did and said, tailed by the API and the dashboard."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write("".join(f"{stamp} {line}\n" for line in text.rstrip().splitlines() or [""]))


class DbProgress(Progress):
    def __init__(self, sessions: sessionmaker[Session], run_id: int, claim: str, poll_seconds: float = 1.0,
                 log: RunLog | None = None):
        self.log = log
        self.sessions = sessions
        self.run_id = run_id
        self.claim = claim
        self.poll_seconds = poll_seconds
        self._stop = False
        self._polled = 0.0
        self._t0 = time.monotonic()
        self._first_step: int | None = None
        self._total: int | None = None

    def stage_started(self, stage, first_step, last_step, total_steps):
        self._total = total_steps
        # The pace of one stage says little about the next (sampling vs. supervised steps): re-measure.
        self._first_step = None
        if self.log is not None:
            self.log.write(f"stage {stage}: steps {first_step}-{last_step} of {total_steps}")
        with session_scope(self.sessions) as s:
            run = s.get(Run, self.run_id)
            run.stage, run.total_steps = stage, total_steps

    def metrics(self, record):
        step, stage = int(record["step"]), record["stage"]
        values = {k: float(v) for k, v in record.items()
                  if k not in ("step", "stage") and isinstance(v, (int, float)) and math.isfinite(v)}
        if self._first_step is None:
            self._first_step, self._t0 = step, time.monotonic()
        done = step - self._first_step + 1
        eta = ((time.monotonic() - self._t0) / done * (self._total - step)) if self._total and done > 1 else None
        with session_scope(self.sessions) as s:
            s.merge(RunStep(run_id=self.run_id, step=step, stage=stage))
            for name, value in values.items():
                s.merge(RunMetric(run_id=self.run_id, name=name, step=step, value=value))
            run = s.get(Run, self.run_id)
            run.step, run.stage, run.eta_seconds = step, stage, eta

    def message(self, text):
        if self.log is not None:
            self.log.write(text)

    def sample(self, record):
        with session_scope(self.sessions) as s:
            s.add(Sample(run_id=self.run_id, step=int(record["step"]), stage=record["stage"], payload=record))

    def checkpoint(self, step, path):
        stage = None
        meta = Path(path) / "meta.json"
        if meta.is_file():
            import json

            stage = json.loads(meta.read_text()).get("stage")
        if self.log is not None:
            self.log.write(f"checkpoint step {step}")
        with session_scope(self.sessions) as s:
            existing = s.scalar(select(Checkpoint).where(Checkpoint.run_id == self.run_id, Checkpoint.step == step))
            if existing is None:
                s.add(Checkpoint(run_id=self.run_id, step=step, stage=stage, path=str(path)))

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self._stop and now - self._polled >= self.poll_seconds:
            self._polled = now
            with session_scope(self.sessions) as s:
                run = s.get(Run, self.run_id)
                # Stop on cancel, and also if another attempt took the run over (we were presumed dead).
                self._stop = bool(run.cancel_requested) or run.claim != self.claim
        return self._stop


# What was paid: added up over a job's attempts. The other ledger counts (ok, cached, ...) are the attempt's.
PAID = ("requests", "retries", "prompt_tokens", "completion_tokens", "cost")


class JobProgress:
    """Turns each answer into the job row's live statistics (every 10 answers or 1 s): done/total,
    rate, ETA, outcomes, tokens, cost, failure reasons. It adds up every ChatRunner's ledger of the
    attempt (an evaluation has two: references, verdicts) and what earlier attempts paid (`before`:
    the row's stats when the attempt began), so the job's cost is exact across pauses and retries."""

    def __init__(self, sessions, job_id: int, claim: str, total: int, before: dict | None = None):
        self.sessions, self.job_id, self.claim, self.total = sessions, job_id, claim, total
        self.before = {k: (before or {}).get(k, 0) for k in PAID}
        self.ledgers: dict[int, object] = {}
        self.done, self.reasons = 0, Counter()
        self.t0, self._written = time.monotonic(), 0.0

    def watch(self, ledger) -> None:
        self.ledgers[id(ledger)] = ledger

    def spent(self) -> float:
        return self.before["cost"] + sum(led.cost for led in self.ledgers.values())

    def __call__(self, result: dict, ledger=None) -> None:
        if ledger is not None:  # None: an answer nothing was paid for (study generation runs models locally)
            self.watch(ledger)
        self.done += 1
        if result.get("status") != "ok":
            self.reasons[(result.get("error") or result.get("status") or "unknown")[:120]] += 1
        now = time.monotonic()
        if self.done == self.total or self.done % 10 == 0 or now - self._written > 1.0:
            self._written = now
            self.write()

    def figures(self) -> dict:
        out = Counter()
        for led in self.ledgers.values():
            out.update({k: v for k, v in led.as_dict().items() if k != "elapsed_s"})
        out.update(self.before)
        return {**out, "elapsed_s": round(time.monotonic() - self.t0, 3)}

    def write(self) -> None:
        elapsed = time.monotonic() - self.t0
        eta = elapsed / self.done * (self.total - self.done) if self.done and self.total else None
        figures = self.figures()
        stats = {**figures, "rate_per_s": round(self.done / elapsed, 3) if elapsed > 0 else None,
                 "reasons": [{"reason": r, "count": c} for r, c in self.reasons.most_common(10)]}
        with session_scope(self.sessions) as s:
            s.execute(update(Job).where(Job.id == self.job_id, Job.claim == self.claim)
                      .values(done=self.done, total=self.total, cost=figures.get("cost", 0.0), stats=stats,
                              eta_seconds=eta, heartbeat_at=utcnow()))
