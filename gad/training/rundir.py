"""The run folder's layout, spelled once: where checkpoints live and what each one holds.

    <run>/config.yaml, metrics.jsonl, samples.jsonl, fork.json (a fork's marker), curves.png
    <run>/checkpoints/step-N/           one complete checkpoint, N = global step
        student/                        the student (weights, tokenizer, trainer state, optimizer)
        discriminator/                  the discriminator, where the method has one
        meta.json                       written last: a folder without it is an interrupted save
    <run>/checkpoints/step-N.partial/   a save in progress (renamed to step-N when complete)
    <run>/errors/rank-R.txt             the traceback of a rank that failed (runs of several processes)

Pure path arithmetic and listing; the trainers write checkpoints, the pipeline and forks read them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

CHECKPOINTS = "checkpoints"
STUDENT = "student"
DISCRIMINATOR = "discriminator"
META = "meta.json"
PARTIAL = ".partial"


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    """`<run>/checkpoints/step-N`."""
    return Path(run_dir) / CHECKPOINTS / f"step-{step}"


def checkpoint_step(path: str | Path) -> int:
    """`.../checkpoints/step-N` -> N."""
    return int(Path(path).name.split("-")[1])


def student_dir(checkpoint: str | Path) -> Path:
    """The student model inside a checkpoint folder (what chat, evaluation and forks load)."""
    return Path(checkpoint) / STUDENT


def discriminator_dir(checkpoint: str | Path) -> Path:
    return Path(checkpoint) / DISCRIMINATOR


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path, dict]]:
    """Complete checkpoints (meta.json present), oldest first: (step, folder, meta)."""
    found = []
    for path in (Path(run_dir) / CHECKPOINTS).glob("step-*"):
        meta = path / META
        if path.is_dir() and meta.is_file() and not path.name.endswith(PARTIAL):
            found.append((checkpoint_step(path), path, json.loads(meta.read_text())))
    return sorted(found, key=lambda x: x[0])


def link_or_copy(src: Path, dst: Path) -> None:
    """Checkpoints are write-once (written under .partial, then renamed), so a hard link is a safe,
    free copy; across file systems linking fails with OSError and the file is copied instead."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def rank_error_file(run_dir: str | Path, rank: int) -> Path:
    return Path(run_dir) / "errors" / f"rank-{rank}.txt"


def write_rank_error(run_dir: str | Path, rank: int, text: str) -> None:
    path = rank_error_file(run_dir, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def rank_errors(run_dir: str | Path) -> dict[int, str]:
    """Tracebacks left by failed ranks, by rank (oldest file first: the first failure is usually the cause)."""
    files = sorted((Path(run_dir) / "errors").glob("rank-*.txt"), key=lambda p: p.stat().st_mtime)
    return {int(p.stem.split("-")[1]): p.read_text(encoding="utf-8", errors="replace") for p in files}


def clear_rank_errors(run_dir: str | Path) -> None:
    """Before a (re)launch: errors of an earlier attempt must not be quoted for this one."""
    shutil.rmtree(Path(run_dir) / "errors", ignore_errors=True)
