"""Forks (issue 11, item 1): a new run from a parent's checkpoint whose edited settings take effect."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gad.training.config import ConfigError, RunConfig
from gad.training.fork import check_fork, prepare_fork
from gad.training.pipeline import run
from gad.training.rundir import list_checkpoints
from tests.conftest import read_jsonl

pytestmark = pytest.mark.slow

FORK_AT = 4  # adversarial stage, step 2 of 6


def settings(tiny_model, data, out, **kw) -> RunConfig:
    base = dict(student=str(tiny_model), data=str(data), output=str(out), batch_size=2, group_size=2,
                max_new_tokens=6, max_prompt_length=48, warmup_steps=2, steps=6, disc_only_steps=1, save_steps=2,
                sample_every=1, lr=1e-4, warmup_lr=1e-4, disc_lr=1e-3, seqkd_lr=3e-4)
    base.update(kw)
    return RunConfig(**base)


@pytest.fixture(scope="module")
def parent(tiny_model, pairs_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("parent") / "run"
    result = run(settings(tiny_model, pairs_file, out))
    assert result.status == "succeeded" and result.global_step == 8
    return out


def fork(parent, tiny_model, pairs_file, child, **changes):
    cfg = settings(tiny_model, pairs_file, child, **changes)
    copied = prepare_fork(parent, child, FORK_AT, cfg)
    return cfg, copied


def student(run_dir: Path, step: int) -> dict:
    return load_file(str(run_dir / "checkpoints" / f"step-{step}" / "student" / "model.safetensors"))


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_fork_copies_its_checkpoint_the_stage_reference_and_the_history(parent, tiny_model, pairs_file, tmp_path):
    _, copied = fork(parent, tiny_model, pairs_file, tmp_path / "child")
    # step-2 ended the warmup: the adversarial stage's KL reference
    assert [(s, stage) for s, stage, _ in copied] == [(2, "warmup"), (4, "adversarial")]
    assert [s for s, _, _ in list_checkpoints(tmp_path / "child")] == [2, 4]
    assert [m["step"] for m in read_jsonl(tmp_path / "child" / "metrics.jsonl")] == [1, 2, 3, 4]
    marker = json.loads((tmp_path / "child" / "fork.json").read_text())
    assert (marker["step"], marker["stage"], marker["reference_step"]) == (FORK_AT, "adversarial", 2)


def test_fork_with_unchanged_settings_continues_exactly_like_the_parent(parent, tiny_model, pairs_file, tmp_path):
    child = tmp_path / "child"
    cfg, _ = fork(parent, tiny_model, pairs_file, child)
    assert run(cfg).status == "succeeded"
    ref = [{k: v for k, v in m.items() if k != "step_time"} for m in read_jsonl(parent / "metrics.jsonl")]
    got = [{k: v for k, v in m.items() if k != "step_time"} for m in read_jsonl(child / "metrics.jsonl")]
    assert got == ref
    assert same(student(parent, 8), student(child, 8))


def test_fork_with_a_new_lr_trains_with_it(parent, tiny_model, pairs_file, tmp_path):
    child = tmp_path / "child"
    cfg, _ = fork(parent, tiny_model, pairs_file, child, lr=1e-3, disc_lr=3e-3)
    assert run(cfg).status == "succeeded"
    after = [m for m in read_jsonl(child / "metrics.jsonl") if m["step"] > FORK_AT]
    assert [m["step"] for m in after] == [5, 6, 7, 8]
    assert {m["lr"] for m in after} == {1e-3} and {m["disc_lr"] for m in after} == {3e-3}
    parent_after = {m["step"]: m for m in read_jsonl(parent / "metrics.jsonl") if m["step"] > FORK_AT}
    assert all(m["disc_loss"] != parent_after[m["step"]]["disc_loss"] for m in after[1:])
    assert not same(student(parent, 8), student(child, 8))


def test_fork_of_a_gad_checkpoint_to_seqkd_runs_seqkd_steps_at_its_lr(parent, tiny_model, pairs_file, tmp_path):
    child = tmp_path / "child"
    cfg, _ = fork(parent, tiny_model, pairs_file, child, method="seqkd", steps=7)
    result = run(cfg)
    assert result.status == "succeeded" and (result.global_step, result.total_steps) == (7, 7)
    after = [m for m in read_jsonl(child / "metrics.jsonl") if m["step"] > FORK_AT]
    assert [(m["step"], m["stage"]) for m in after] == [(5, "seqkd"), (6, "seqkd"), (7, "seqkd")]
    assert {m["lr"] for m in after} == {3e-4}
    assert [s for s, _, _ in list_checkpoints(child)] == [2, 4, 6, 7]
    # the seqkd steps started from the fork point's student, not from the original one
    assert not same(student(parent, FORK_AT), student(child, 7))


def test_fork_with_fewer_steps_than_its_fork_point_is_refused(parent, tiny_model, pairs_file, tmp_path):
    short = settings(tiny_model, pairs_file, tmp_path / "child", steps=1)   # 2 warmup + 1 = 3 < 4
    with pytest.raises(ConfigError, match=r"steps: the fork starts after step 4, but its settings plan 3 steps"):
        check_fork(parent, FORK_AT, short)
    with pytest.raises(ConfigError, match=r"steps: .*plan 4 steps in all"):          # nothing left after 4
        check_fork(parent, FORK_AT, settings(tiny_model, pairs_file, tmp_path / "child", steps=2))
    # a folder filled by hand is refused by the run itself, before training
    shutil.copytree(parent / "checkpoints" / "step-4", tmp_path / "child" / "checkpoints" / "step-4")
    with pytest.raises(ConfigError, match=r"steps: .*step-4, but these settings plan 3 steps"):
        run(short)
    assert not (tmp_path / "child" / "result.json").exists()


@pytest.mark.parametrize("change, field", [(dict(lora=True), "lora"), (dict(student="other/model"), "student")])
def test_fork_cannot_change_what_the_checkpoint_weights_are(parent, tiny_model, pairs_file, tmp_path, change, field):
    with pytest.raises(ConfigError, match=rf"^{field}: a fork keeps the checkpoint's weights"):
        check_fork(parent, FORK_AT, settings(tiny_model, pairs_file, tmp_path / "child", **change))



def test_stage_start_decides_what_a_checkpoint_gives_the_stage_containing_it(tmp_path):
    from gad.training.pipeline import Stage, stage_start

    adversarial = Stage("adversarial", 6, 1e-4, True, True)
    def ck(step, stage, stage_step, **meta):
        return step, tmp_path / f"step-{step}", dict(stage=stage, stage_step=stage_step, **meta)

    warm_end, mid = ck(2, "warmup", 2), ck(4, "adversarial", 2)
    fresh = stage_start(adversarial, 2, [warm_end])
    assert (fresh.resume, fresh.reference_step) == (None, 2)
    same = stage_start(adversarial, 2, [warm_end, mid])
    assert (same.continues, same.stage_step, same.reference_step) == (True, 2, 2)
    # other stage lengths (warmup 3): the same kind of stage, entered at its step 1, keeps its recorded reference
    shifted = stage_start(adversarial, 3, [warm_end, mid])
    assert (shifted.continues, shifted.stage_step, shifted.reference_step) == (True, 1, 2)
    # another kind of stage (a fork to seqkd): moments start fresh, the fork point's student is the reference
    seqkd = stage_start(Stage("seqkd", 7, 1e-4, True, False), 0, [warm_end, mid])
    assert (seqkd.continues, seqkd.stage_step, seqkd.reference_step) == (False, 4, 4)
    lone = stage_start(adversarial, 2, [ck(4, "adversarial", 2, reference_step=2)])
    assert lone.reference is None and "original student" in lone.note
