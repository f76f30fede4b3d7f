"""Forks: a new run that starts from another run's checkpoint, with its own (edited) settings.

`check_fork` refuses forks that cannot make sense; `prepare_fork` fills the child's folder
(checkpoints, history up to the fork point, a `fork.json` marker) so that `pipeline.run` on the
child's settings continues from the parent's checkpoint. What carries over is decided per setting
and stated in FORK_HELP (shown by `gad-studio runs fork --help`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from gad.training.config import FIXED_BY_CHECKPOINT, ConfigError, RunConfig, check_plan, planned_steps
from gad.training.rundir import META, checkpoint_dir, link_or_copy, list_checkpoints

FORK_MARKER = "fork.json"

FORK_HELP = """\
A fork is a new run that starts from the parent's checkpoint at step N with edited settings. Its
step count continues from N (the parent's metrics and samples up to N are copied) and its
settings plan the whole run, so they must plan more than N steps.

Carried over from the checkpoint:
  - the student's weights, always;
  - the discriminator's weights, when the fork's stage after N uses one (a checkpoint without one
    gives a fresh head, as every GAD run starts with); --fork-discriminator fresh asks for a fresh
    head even when the checkpoint holds a discriminator;
  - the random-number state;
  - when the fork continues the checkpoint's stage (same stage: warmup, seqkd, disc or
    adversarial), also both models' AdamW moments, the position in that stage's data order and
    the KL reference (the student where the parent's stage began). When the fork enters another
    stage (e.g. --method seqkd from a GAD checkpoint, or other stage lengths), the moments start
    fresh and the KL reference is the student at N, as at any stage boundary, because moments of
    another loss do not fit the new one.
Taken from the fork's settings: learning rates (constant schedule), weight decay, gradient clips,
the KL coefficient, batch and group size, sampling, step counts, checkpoint cadence; everything
not listed above.
Refused: settings that plan no step after N; another student, or other LoRA settings (lora,
lora_r, lora_alpha, lora_dropout), because the checkpoint's weights are that student's and that
adapter's."""



def _parent_checkpoint(parent_run_dir: Path, step: int) -> tuple[int, Path, dict]:
    ckpts = {s: (s, p, m) for s, p, m in list_checkpoints(parent_run_dir)}
    if step not in ckpts:
        raise ConfigError(f"{parent_run_dir} has no complete checkpoint at step {step}; it has {sorted(ckpts)}")
    return ckpts[step]


def _parent_settings(parent_run_dir: Path) -> dict[str, Any]:
    path = parent_run_dir / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{parent_run_dir} has no config.yaml: not a run folder to fork from")
    return yaml.safe_load(path.read_text()) or {}


def _training_prompts(cfg: RunConfig) -> int:
    """How many training prompts the child's settings give: the number its default step counts use."""
    from gad.data.examples import DataError, load_examples, split_examples

    try:
        examples = load_examples(cfg.data, cfg.teacher_responses, require_response=True, limit=cfg.max_examples)
    except FileNotFoundError as err:
        raise DataError(cfg.data, str(err)) from None
    return len(split_examples(examples, cfg.test_fraction, cfg.seed)[0])


def _comparable(value: Any) -> Any:
    """A local path resolved (relative and absolute spellings are the same student)."""
    return str(Path(value).resolve()) if isinstance(value, str) and Path(value).exists() else value


def check_fork(parent_run_dir: str | Path, step: int, child_cfg: RunConfig) -> None:
    """Raise ConfigError (naming the field) when a fork of `parent_run_dir` at `step` with
    `child_cfg` cannot make sense. Reads the child's data to know its default step counts."""
    parent_run_dir = Path(parent_run_dir)
    _parent_checkpoint(parent_run_dir, step)
    parent = _parent_settings(parent_run_dir)
    for name in sorted(FIXED_BY_CHECKPOINT):
        if name in parent and _comparable(parent[name]) != _comparable(getattr(child_cfg, name)):
            raise ConfigError(f"{name}: a fork keeps the checkpoint's weights, which belong to {name}="
                              f"{parent[name]!r}; it cannot become {getattr(child_cfg, name)!r} (start a new run)",
                              field=name)
    n_train = _training_prompts(child_cfg)
    check_plan(child_cfg, n_train)
    steps = {k: v for k, v in planned_steps(child_cfg, n_train).items() if v > 0}
    total = sum(steps.values())
    if total <= step:
        plan = " + ".join(f"{k} {v}" for k, v in steps.items())
        raise ConfigError(f"steps: the fork starts after step {step}, but its settings plan {total} steps in all "
                          f"({plan}), so it would train nothing; give it more than {step} steps in all", field="steps")


def _copy_history(src: Path, dest: Path, step: int) -> None:
    """Records up to `step` (inclusive): the child's curves start where the parent's were."""
    if not src.is_file():
        return
    kept = []
    for line in src.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a crash mid-write, as JsonlProgress.truncate_after drops
            continue
        if record.get("step", 0) <= step:
            kept.append(line)
    dest.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _link_tree(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, copy_function=link_or_copy)


def prepare_fork(parent_run_dir: str | Path, child_run_dir: str | Path, step: int,
                 child_cfg: RunConfig, *, check: bool = True) -> list[tuple[int, str, Path]]:
    """Check the fork, then fill `child_run_dir`: the checkpoint at `step`, the checkpoint where its
    stage began (its KL reference, when it is not the original student), the parent's metrics and
    samples up to `step`, and the `fork.json` marker. Returns (step, stage, path) of the copied
    checkpoints, oldest first. The child folder must not hold checkpoints yet. `check=False` skips
    `check_fork` for a caller that just ran it (it reads the child's data).

    Checkpoint files are hard-linked when the file system allows (they are never rewritten), so a
    fork of a large model costs no disk.
    """
    parent_run_dir, child_run_dir = Path(parent_run_dir), Path(child_run_dir)
    if check:
        check_fork(parent_run_dir, step, child_cfg)
    _, _, meta = _parent_checkpoint(parent_run_dir, step)
    if list_checkpoints(child_run_dir):
        raise ConfigError(f"{child_run_dir} already holds checkpoints; a fork needs a new folder")
    reference = meta.get("reference_step", step - meta.get("stage_step", 0))
    parent_ckpts = {s: p for s, p, _ in list_checkpoints(parent_run_dir)}
    wanted = sorted({step} | ({reference} if reference in parent_ckpts and reference != step else set()))
    copied = []
    for s in wanted:
        dest = checkpoint_dir(child_run_dir, s)
        _link_tree(parent_ckpts[s], dest)
        copied.append((s, json.loads((dest / META).read_text())["stage"], dest))
    for name in ("metrics.jsonl", "samples.jsonl"):
        _copy_history(parent_run_dir / name, child_run_dir / name, step)
    parent = _parent_settings(parent_run_dir)
    changed = {k: [parent.get(k), v] for k, v in child_cfg.model_dump().items()
               if k != "output" and parent.get(k) != v}
    (child_run_dir / FORK_MARKER).write_text(json.dumps({
        "parent": str(parent_run_dir.resolve()), "step": step, "stage": meta.get("stage"),
        "reference_step": reference if reference in parent_ckpts else 0, "changed": changed}, indent=2))
    return copied


def read_fork(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / FORK_MARKER
    return json.loads(path.read_text()) if path.is_file() else None


def fork_message(fork: dict[str, Any]) -> str:
    changed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in fork.get("changed", {}).items()) or "none"
    return (f"fork of {fork['parent']} at step {fork['step']} ({fork.get('stage')}); changed settings: {changed}. "
            f"Weights, RNG and (within the same stage) optimizer moments carry over; learning rates and every "
            f"other setting come from this run's settings")
