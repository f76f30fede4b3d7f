"""The database side of a running training: gad's Progress written as rows, and the run's worker.log.

`DbProgress` turns each step's metrics into RunStep + RunMetric rows and updates the run's step,
stage and ETA; samples and checkpoints become rows too; `should_stop` reads the cancel flag.
The heartbeat thread that keeps a claimed row alive is app/services/lifecycle.py's.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.models import Checkpoint, Run, RunMetric, RunStep, Sample
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
