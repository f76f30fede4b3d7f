"""Resume: exact at any step of any epoch and stage (issue 11, item 2); refused with other inputs or
settings, and only those that matter (item 3)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from gad.training.config import ConfigError, RunConfig
from gad.training.pipeline import run
from gad.training.progress import Progress
from gad.training.rundir import list_checkpoints
from tests.conftest import read_jsonl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def six_pairs(pairs_file, tmp_path_factory) -> Path:
    """6 prompts: with batch 2 an epoch is 3 steps, so a short run crosses several epochs."""
    out = tmp_path_factory.mktemp("six") / "six.jsonl"
    out.write_text("".join(pairs_file.read_text(encoding="utf-8").splitlines(keepends=True)[:6]), encoding="utf-8")
    return out


def gad_cfg(tiny_model, data, out, **kw) -> RunConfig:
    base = dict(student=str(tiny_model), data=str(data), output=str(out), batch_size=2, group_size=2,
                max_new_tokens=6, max_prompt_length=48, warmup_steps=7, steps=8, disc_only_steps=1,
                save_steps=4, sample_every=1, lr=1e-4, warmup_lr=1e-4, disc_lr=1e-3)
    base.update(kw)
    return RunConfig(**base)


class StopAt(Progress):
    """Cancels after step `step`: the run saves a checkpoint there and returns, as a kill would leave it
    (once later checkpoints are deleted)."""

    def __init__(self, step):
        self.step, self.seen = step, 0

    def metrics(self, record):
        self.seen = record["step"]

    def should_stop(self):
        return self.seen >= self.step


def without_time(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "step_time"} for r in records]


def first_difference(expected: list[dict], got: list[dict]) -> str | None:
    for a, b in zip(expected, got):
        if a != b:
            keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            return f"step {a.get('step')}: " + ", ".join(f"{k} {a.get(k)!r} != {b.get(k)!r}" for k in keys[:4])
    if len(expected) != len(got):
        return f"{len(expected)} records expected, {len(got)} written"
    return None


# Where the interrupted run is stopped and resumed. Warmup: steps 1-7 (epochs of 3 steps: 1-3, 4-6, 7);
# adversarial: steps 8-15 (stage epochs 8-10, 11-13, 14-15). Checkpoints every 4 steps + stage ends.
RESUME_POINTS = [
    (2, None, "warmup, inside the first epoch"),
    (5, None, "warmup, inside the second epoch"),
    (7, None, "the stage boundary (end of warmup)"),
    (10, None, "adversarial, at the end of its first epoch"),
    (13, 12, "right after the checkpoint at 12 (killed during step 13), adversarial second epoch"),
    (14, None, "adversarial, inside the third epoch"),
]


def test_resume_at_any_step_of_any_epoch_and_stage_is_exact(tiny_model, six_pairs, tmp_path):
    reference = run(gad_cfg(tiny_model, six_pairs, tmp_path / "reference"))
    assert reference.status == "succeeded" and reference.global_step == 15

    out = tmp_path / "interrupted"
    cfg = gad_cfg(tiny_model, six_pairs, out)
    resumed_from = []
    for stop, keep, _ in RESUME_POINTS:
        result = run(cfg, StopAt(stop))
        assert result.status == "cancelled" and result.global_step == stop
        if keep is not None:  # a kill leaves nothing after the last regular checkpoint
            for step, path, _ in list_checkpoints(out):
                if step > keep:
                    shutil.rmtree(path)
        resumed_from.append(list_checkpoints(out)[-1][0])
    assert resumed_from == [2, 5, 7, 10, 12, 14]
    assert run(cfg).status == "succeeded"

    for name in ("metrics.jsonl", "samples.jsonl"):
        expected, got = without_time(read_jsonl(tmp_path / "reference" / name)), without_time(read_jsonl(out / name))
        assert [r["step"] for r in got] == [r["step"] for r in expected]
        diff = first_difference(expected, got)
        assert diff is None, f"{name} differs after resuming at {RESUME_POINTS}: {diff}"
    for sub in ("student", "discriminator"):
        ref = load_file(str(tmp_path / "reference" / "checkpoints" / "step-15" / sub / "model.safetensors"))
        got = load_file(str(out / "checkpoints" / "step-15" / sub / "model.safetensors"))
        assert all(torch.equal(ref[k], got[k]) for k in ref), f"final {sub} differs from the uninterrupted run"


# ----------------------------------------------------------------------------------------------
# Item 3: what a resume compares
# ----------------------------------------------------------------------------------------------
def seqkd_cfg(tiny_model, data, out, **kw) -> RunConfig:
    base = dict(method="seqkd", student=str(tiny_model), data=str(data), output=str(out), batch_size=2,
                max_new_tokens=6, max_prompt_length=48, steps=3, save_steps=100, sample_every=100, seqkd_lr=1e-4)
    base.update(kw)
    return RunConfig(**base)


def test_a_changed_data_file_is_refused_on_resume(tiny_model, pairs_file, tmp_path):
    data = tmp_path / "data.jsonl"
    lines = pairs_file.read_text(encoding="utf-8").splitlines(keepends=True)
    data.write_text("".join(lines[:6]), encoding="utf-8")
    cfg = seqkd_cfg(tiny_model, data, tmp_path / "run")
    assert run(cfg, StopAt(1)).status == "cancelled"
    split = (tmp_path / "run" / "split.json").read_text()

    data.write_text("".join(lines[6:12]), encoding="utf-8")  # same path, other prompts
    with pytest.raises(ConfigError, match=r"data: its contents changed \(.*data\.jsonl sha256 \w+, \d+ bytes"):
        run(cfg)
    assert (tmp_path / "run" / "split.json").read_text() == split     # the record of the first data stays
    assert [m["step"] for m in read_jsonl(tmp_path / "run" / "metrics.jsonl")] == [1]


def test_the_same_data_by_a_relative_or_absolute_path_resumes(tiny_model, six_pairs, tmp_path, monkeypatch):
    monkeypatch.chdir(six_pairs.parent)
    assert run(seqkd_cfg(tiny_model, six_pairs.name, tmp_path / "run"), StopAt(1)).status == "cancelled"
    result = run(seqkd_cfg(tiny_model, six_pairs.resolve(), tmp_path / "run"))
    assert result.status == "succeeded" and result.global_step == 3


def test_seqkd_resumes_with_changed_settings_it_does_not_use_and_names_them(tiny_model, six_pairs, tmp_path):
    assert run(seqkd_cfg(tiny_model, six_pairs, tmp_path / "run"), StopAt(1)).status == "cancelled"
    result = run(seqkd_cfg(tiny_model, six_pairs, tmp_path / "run", group_size=6, warmup_steps=5))
    assert result.status == "succeeded" and result.global_step == 3
    named = " | ".join(result.warnings)
    assert "group_size=6" in named and "warmup_steps=5" in named


def test_a_changed_student_is_refused_on_resume(tiny_model, six_pairs, tmp_path):
    student = tmp_path / "student"
    shutil.copytree(tiny_model, student)
    cfg = seqkd_cfg(student, six_pairs, tmp_path / "run")
    assert run(cfg, StopAt(1)).status == "cancelled"
    weights = load_file(str(student / "model.safetensors"))
    save_file({k: v + 1e-3 for k, v in weights.items()}, str(student / "model.safetensors"),
              metadata={"format": "pt"})
    with pytest.raises(ConfigError, match=r"student \(.*\): changed model\.safetensors"):
        run(cfg)
