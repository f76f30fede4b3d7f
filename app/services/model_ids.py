"""The names the studio gives checkpoints, spelled once: `run-N/step-M` (what /v1/models lists, what
pickers offer, what studies and evaluations are labelled with) and the student model folder inside
a checkpoint (gad.training.rundir owns the layout)."""

from __future__ import annotations

import re

from gad.training.rundir import student_dir

_MODEL_ID = re.compile(r"run-([0-9]{1,9})/step-([0-9]{1,9})")


def model_id(run_id: int, step: int) -> str:
    """The stable, readable name of a run's checkpoint at `step`."""
    return f"run-{run_id}/step-{step}"


def parse_model_id(text: str) -> tuple[int, int] | None:
    """(run id, step) of a `run-N/step-M` name; None for any other text."""
    m = _MODEL_ID.fullmatch(text or "")
    return (int(m[1]), int(m[2])) if m else None


def checkpoint_student(checkpoint_path: str) -> str:
    """The folder of the student model a checkpoint holds (what chat, evaluation and forks load)."""
    return str(student_dir(checkpoint_path))
