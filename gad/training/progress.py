"""How a run reports what it is doing: a small interface the studio implements with database rows.

`JsonlProgress` (the default) writes `metrics.jsonl` and `samples.jsonl` in the run folder;
`BarProgress` draws a terminal progress bar; `MultiProgress` fans out to several.
Only the main process reports; trainers call these methods from rank 0 alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from gad.training.metric_catalog import M


def quiet_libraries() -> None:
    """Our own bar and messages replace the libraries' per-file bars and info logs (CLI, workers, benches)."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        import datasets

        datasets.utils.logging.disable_progress_bar()
        datasets.utils.logging.set_verbosity_error()
    except ImportError:
        pass


class Progress:
    """No-op base: override what you need."""

    def stage_started(self, stage: str, first_step: int, last_step: int, total_steps: int) -> None: ...
    def metrics(self, record: dict[str, Any]) -> None: ...
    def sample(self, record: dict[str, Any]) -> None: ...
    def checkpoint(self, step: int, path: str) -> None: ...
    def message(self, text: str) -> None: ...
    def should_stop(self) -> bool:
        """Polled after every step: True asks the run to save and stop (cancellation)."""
        return False
    def close(self) -> None: ...


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf; readers get null
    return value


class JsonlProgress(Progress):
    """Appends one JSON object per step / sample; `truncate_after` drops records past a checkpoint.

    Stage starts, checkpoints and messages go to events.jsonl (rank 0 only), so a supervisor in
    another process (the studio's worker, when a run is a group of processes) can follow a run from
    its files alone."""

    def __init__(self, run_dir: str | Path):
        import os

        self.run_dir = Path(run_dir)
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.samples_path = self.run_dir / "samples.jsonl"
        self.events_path = self.run_dir / "events.jsonl"
        self.main = int(os.environ.get("RANK", "0")) == 0

    def stage_started(self, stage: str, first_step: int, last_step: int, total_steps: int) -> None:
        if self.main:
            self._append(self.events_path, {"event": "stage", "stage": stage, "first_step": first_step,
                                            "last_step": last_step, "total_steps": total_steps})

    def checkpoint(self, step: int, path: str) -> None:
        if self.main:
            self._append(self.events_path, {"event": "checkpoint", "step": step, "path": str(path)})

    def message(self, text: str) -> None:
        if self.main:
            self._append(self.events_path, {"event": "message", "text": text})

    def _append(self, path: Path, record: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({k: _clean(v) for k, v in record.items()}, ensure_ascii=False) + "\n")
            fh.flush()

    def metrics(self, record: dict[str, Any]) -> None:
        self._append(self.metrics_path, record)

    def sample(self, record: dict[str, Any]) -> None:
        self._append(self.samples_path, record)

    def truncate_after(self, step: int) -> None:
        """On resume: keep only records up to the checkpoint's step, so none is duplicated."""
        for path in (self.metrics_path, self.samples_path):
            if not path.is_file():
                continue
            kept = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line).get("step", 0) <= step:
                        kept.append(line)
                except json.JSONDecodeError:  # a line cut by a crash mid-write: drop it
                    continue
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
            tmp.replace(path)


STOP_FILE = "STOP"


class StopFile(Progress):
    """Stop when the run folder holds a file named STOP: how a supervisor in another process (the
    studio's worker) cancels a run that is a group of processes. Rank 0 decides; the trainers
    broadcast the decision, so every rank stops after the same step and a checkpoint is kept."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / STOP_FILE

    def should_stop(self) -> bool:
        return self.path.exists()


class BarProgress(Progress):
    """A tqdm bar over the run's global steps, with the headline numbers in its postfix."""

    KEYS = ("loss", M.DISC_LOSS, M.DISC_ACCURACY, M.REWARD_MEAN, "kl")

    def __init__(self, total_steps: int, initial: int = 0):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total_steps, initial=initial, unit="step", dynamic_ncols=True)

    def stage_started(self, stage, first_step, last_step, total_steps):
        self.bar.set_description(stage)

    def metrics(self, record):
        self.bar.n = record["step"]
        self.bar.set_postfix({k: f"{record[k]:.3g}" for k in self.KEYS if isinstance(record.get(k), float)},
                             refresh=False)
        self.bar.refresh()

    def message(self, text):
        self.bar.write(text)

    def close(self):
        self.bar.close()


class MultiProgress(Progress):
    def __init__(self, *children: Progress):
        self.children = [c for c in children if c is not None]

    def stage_started(self, *a):
        for c in self.children:
            c.stage_started(*a)

    def metrics(self, record):
        for c in self.children:
            c.metrics(record)

    def sample(self, record):
        for c in self.children:
            c.sample(record)

    def checkpoint(self, step, path):
        for c in self.children:
            c.checkpoint(step, path)

    def message(self, text):
        for c in self.children:
            c.message(text)

    def should_stop(self):
        return any(c.should_stop() for c in self.children)

    def close(self):
        for c in self.children:
            c.close()
