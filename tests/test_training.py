"""Tiny end-to-end runs of every method on CPU (seconds each), resume and multi-process sync."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gad.training.config import RunConfig
from gad.training.pipeline import run
from gad.training.progress import Progress
from gad.training.rundir import list_checkpoints
from tests.conftest import REPO, read_jsonl

pytestmark = pytest.mark.slow

ADVERSARIAL_METRICS = {"disc_loss", "disc_accuracy", "disc_teacher_score", "disc_student_score", "reward_mean",
                       "reward_std", "kl", "student_length", "teacher_length", "lr", "disc_lr", "step_time"}
WARMUP_METRICS = {"loss", "disc_loss", "disc_accuracy", "disc_teacher_score", "disc_student_score",
                  "student_length", "teacher_length", "lr", "disc_lr", "step_time"}


def small(tiny_model, pairs_file, out, **kw) -> RunConfig:
    base = dict(student=str(tiny_model), data=str(pairs_file), output=str(out), batch_size=2, group_size=4,
                max_new_tokens=8, max_prompt_length=48, warmup_steps=3, steps=3, disc_only_steps=1,
                save_steps=2, sample_every=1, lr=1e-4, warmup_lr=1e-4, disc_lr=1e-3, seqkd_lr=1e-4)
    base.update(kw)
    return RunConfig(**base)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def changed(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a if k in b)


def test_gad_run_trains_both_models_and_reports_everything(tiny_model, pairs_file, tmp_path):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    result = run(small(tiny_model, pairs_file, tmp_path / "run"))
    assert result.status == "succeeded" and result.global_step == 6
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [(m["step"], m["stage"]) for m in metrics] == [(1, "warmup"), (2, "warmup"), (3, "warmup"),
                                                          (4, "adversarial"), (5, "adversarial"), (6, "adversarial")]
    assert "loss" not in metrics[0]                      # step 1 is discriminator-only
    for m in metrics[1:3]:
        assert WARMUP_METRICS <= set(m), WARMUP_METRICS - set(m)
    for m in metrics[3:]:
        assert ADVERSARIAL_METRICS <= set(m), ADVERSARIAL_METRICS - set(m)
        assert 0.0 <= m["disc_accuracy"] <= 1.0
    samples = read_jsonl(tmp_path / "run" / "samples.jsonl")
    adv = [s for s in samples if s["stage"] == "adversarial"]
    assert adv and all(len(s["students"]) == 4 for s in adv)
    assert all(isinstance(x["score"], float) and isinstance(x["advantage"], float) for x in adv[0]["students"])
    assert abs(sum(x["advantage"] for x in adv[0]["students"])) < 1e-3  # group-normalised
    assert adv[0]["prompt"] and adv[0]["teacher"]

    ckpts = {s: p for s, p, _ in list_checkpoints(tmp_path / "run")}
    assert sorted(ckpts) == [2, 3, 4, 6]                   # every 2 global steps + each stage's end
    initial = weights(Path(tiny_model))
    final = ckpts[6]
    assert changed(initial, weights(final / "student"))
    assert changed(weights(ckpts[3] / "discriminator"), weights(final / "discriminator"))
    assert changed(weights(ckpts[3] / "student"), weights(final / "student"))  # the adversarial stage moved it
    AutoModelForCausalLM.from_pretrained(final / "student")
    d = AutoModelForSequenceClassification.from_pretrained(final / "discriminator")
    assert d.config.num_labels == 1


def test_seqkd_run(tiny_model, pairs_file, tmp_path):
    result = run(small(tiny_model, pairs_file, tmp_path / "run", method="seqkd", steps=4))
    assert result.status == "succeeded" and result.global_step == 4
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert {m["stage"] for m in metrics} == {"seqkd"} and len(metrics) == 4
    assert all("loss" in m and "teacher_length" in m and "disc_loss" not in m for m in metrics)
    assert metrics[-1]["loss"] < metrics[0]["loss"]       # lr 1e-4 on 2 pairs a step: CE falls
    samples = read_jsonl(tmp_path / "run" / "samples.jsonl")
    assert samples and all(len(x["students"]) == 4 and x["students"][0]["score"] is None for x in samples)
    final = result.final_checkpoint
    assert not (final / "discriminator").exists()
    assert changed(weights(Path(tiny_model)), weights(final / "student"))


def test_offpolicy_run_freezes_the_discriminator_in_its_last_stage(tiny_model, pairs_file, tmp_path):
    cfg = small(tiny_model, pairs_file, tmp_path / "run", method="offpolicy", warmup_steps=2,
                offpolicy_disc_steps=2, steps=2)
    result = run(cfg)
    assert result.status == "succeeded" and result.global_step == 6
    stages = [m["stage"] for m in read_jsonl(tmp_path / "run" / "metrics.jsonl")]
    assert stages == ["seqkd"] * 2 + ["disc"] * 2 + ["adversarial"] * 2
    ck = {s: p for s, p, _ in list_checkpoints(tmp_path / "run")}
    # disc stage: D learns, the student is frozen
    assert not changed(weights(ck[2] / "student"), weights(ck[4] / "student"))
    # adversarial stage: the student learns, D is frozen
    assert changed(weights(ck[4] / "student"), weights(ck[6] / "student"))
    assert not changed(weights(ck[4] / "discriminator"), weights(ck[6] / "discriminator"))


def test_ablation_without_generator_warmup(tiny_model, pairs_file, tmp_path):
    run(small(tiny_model, pairs_file, tmp_path / "run", generator_warmup=False, steps=1))
    ck = {s: p for s, p, _ in list_checkpoints(tmp_path / "run")}
    assert not changed(weights(Path(tiny_model)), weights(ck[3] / "student"))
    warm = [m for m in read_jsonl(tmp_path / "run" / "metrics.jsonl") if m["stage"] == "warmup"]
    assert len(warm) == 3 and all("loss" not in m and "disc_loss" in m for m in warm)


def test_ablation_without_discriminator_warmup(tiny_model, pairs_file, tmp_path):
    run(small(tiny_model, pairs_file, tmp_path / "run", discriminator_warmup=False, steps=1))
    ck = {s: p for s, p, _ in list_checkpoints(tmp_path / "run")}
    assert not (ck[3] / "discriminator").exists()
    assert (ck[4] / "discriminator").exists()
    warm = [m for m in read_jsonl(tmp_path / "run" / "metrics.jsonl") if m["stage"] == "warmup"]
    assert len(warm) == 3 and all("loss" in m and "disc_loss" not in m for m in warm)


class StopAt(Progress):
    def __init__(self, step):
        self.step, self.seen = step, 0

    def metrics(self, record):
        self.seen = record["step"]

    def should_stop(self):
        return self.seen >= self.step


def test_cancel_saves_then_resume_finishes(tiny_model, pairs_file, tmp_path):
    cfg = small(tiny_model, pairs_file, tmp_path / "run", save_steps=100)
    first = run(cfg, StopAt(4))
    assert first.status == "cancelled" and first.global_step == 4
    assert [s for s, _, _ in list_checkpoints(tmp_path / "run")] == [3, 4]
    second = run(cfg)
    assert second.status == "succeeded" and second.global_step == 6
    steps = [m["step"] for m in read_jsonl(tmp_path / "run" / "metrics.jsonl")]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_batch_larger_than_the_data_is_refused_before_training(tiny_model, pairs_file, tmp_path):
    from gad.training.config import ConfigError

    with pytest.raises(ConfigError, match=r"batch_size 64 is larger than the 16 training prompts"):
        run(small(tiny_model, pairs_file, tmp_path / "run", batch_size=64))
    assert not list_checkpoints(tmp_path / "run")


def test_changed_settings_on_an_existing_run_are_refused(tiny_model, pairs_file, tmp_path):
    from gad.training.config import ConfigError

    run(small(tiny_model, pairs_file, tmp_path / "run", method="seqkd", steps=1))
    with pytest.raises(ConfigError, match=r"other settings or inputs \(seqkd_lr: 0.0001 -> 0.0002\)"):
        run(small(tiny_model, pairs_file, tmp_path / "run", method="seqkd", steps=1, seqkd_lr=2e-4))


def _cli(tiny_model, pairs_file, out) -> list[str]:
    return [sys.executable, "-m", "gad.cli", "train", "--no-progress", "--method", "gad", "--student",
            str(tiny_model), "--data", str(pairs_file), "--output", str(out), "--warmup-steps", "4", "--steps", "6",
            "--batch-size", "2", "--group-size", "4", "--max-new-tokens", "8", "--save-steps", "3",
            "--disc-only-steps", "1", "--max-prompt-length", "48", "--lr", "1e-4", "--disc-lr", "1e-3"]


def test_sigkill_then_rerun_resumes_bit_identically(tiny_model, pairs_file, tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(_cli(tiny_model, pairs_file, reference), check=True, capture_output=True, timeout=300)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(tiny_model, pairs_file, killed), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while not (killed / "checkpoints" / "step-6" / "meta.json").exists():  # mid adversarial stage
        assert proc.poll() is None and time.time() < deadline, "run ended before the kill"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "result.json").exists()

    again = subprocess.run(_cli(tiny_model, pairs_file, killed), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "succeeded: 10/10 steps" in again.stdout
    assert [m["step"] for m in read_jsonl(killed / "metrics.jsonl")] == list(range(1, 11))
    for sub in ("student", "discriminator"):
        ref = weights(reference / "checkpoints" / "step-10" / sub)
        got = weights(killed / "checkpoints" / "step-10" / sub)
        assert not changed(ref, got), f"{sub} differs after resume"


def _rank_logs(logs: Path) -> str:
    """The end of every rank's stderr (and error.json, where a rank recorded one), newest attempt last."""
    parts = []
    for f in sorted(logs.rglob("*")):
        if f.is_file() and f.name in ("stderr.log", "error.json"):
            parts.append(f"--- {f.relative_to(logs)} ---\n" + f.read_text(errors="replace")[-3000:])
    return "\n".join(parts) or f"(no rank logs under {logs})"


def test_two_processes_keep_the_discriminator_identical(tiny_model, pairs_file, tmp_path):
    import json

    out = tmp_path / "ddp"
    logs = tmp_path / "rank-logs"
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    # --standalone picks a free rendezvous port: a fixed one collides with a concurrent suite.
    # --redirects 3: each rank's stdout/stderr goes to its own file, so a failure shows the rank's own error
    # rather than whatever the launcher's interleaved stream ends with.
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "--log-dir", str(logs), "--redirects", "3",
           "-m", "gad.cli"] + _cli(tiny_model, pairs_file, out)[3:]
    cmd[cmd.index("--steps") + 1] = "2"
    cmd[cmd.index("--warmup-steps") + 1] = "2"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env)
    assert proc.returncode == 0, _rank_logs(logs) + "\n--- torchrun ---\n" + proc.stderr[-2000:]
    result = json.loads((out / "result.json").read_text())
    sums = result["discriminator_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    ck = {s: p for s, p, _ in list_checkpoints(out)}
    assert changed(weights(ck[2] / "discriminator"), weights(ck[4] / "discriminator"))


def test_lora_run_trains_adapters_for_both_models(tiny_model, pairs_file, tmp_path):
    from transformers import AutoModelForCausalLM

    result = run(small(tiny_model, pairs_file, tmp_path / "run", lora=True, warmup_steps=2, steps=2, lr=1e-3,
                       warmup_lr=1e-3))
    assert result.status == "succeeded" and result.global_step == 4
    ck = {s: p for s, p, _ in list_checkpoints(tmp_path / "run")}
    for sub in ("student", "discriminator"):
        assert (ck[4] / sub / "adapter_config.json").is_file()
    a = load_file(str(ck[2] / "student" / "adapter_model.safetensors"))
    b = load_file(str(ck[4] / "student" / "adapter_model.safetensors"))
    assert changed(a, b)
    d2 = load_file(str(ck[2] / "discriminator" / "adapter_model.safetensors"))
    d4 = load_file(str(ck[4] / "discriminator" / "adapter_model.safetensors"))
    assert changed(d2, d4) and any("score" in k for k in d4)      # the head trains with the adapters
    model = AutoModelForCausalLM.from_pretrained(ck[4] / "student")  # base + adapter, via peft
    assert sum(p.numel() for p in model.parameters()) > 0


class Messages(Progress):
    def __init__(self):
        self.lines = []

    def message(self, text):
        self.lines.append(text)


def test_resume_from_a_lone_mid_stage_checkpoint(tiny_model, pairs_file, tmp_path):
    run(small(tiny_model, pairs_file, tmp_path / "full"))
    seeded = tmp_path / "seeded"
    shutil.copytree(tmp_path / "full" / "checkpoints" / "step-4", seeded / "checkpoints" / "step-4")
    note = Messages()
    result = run(small(tiny_model, pairs_file, seeded), note)
    assert result.status == "succeeded" and result.global_step == 6
    assert any("KL reference is the original student" in line for line in note.lines)
    assert [s for s, _, _ in list_checkpoints(seeded)] == [4, 6]


def test_a_warmup_of_one_epoch_no_longer_than_disc_only_steps_is_refused_before_training(tiny_model, pairs_file,
                                                                                        tmp_path):
    from gad.training.config import ConfigError

    # 16 prompts, batch 2: the default warmup is one epoch of 8 steps, all of them discriminator-only
    with pytest.raises(ConfigError, match=r"disc_only_steps: 10 discriminator-only steps leave no step"):
        run(small(tiny_model, pairs_file, tmp_path / "run", warmup_steps=None, disc_only_steps=10))
    assert not list_checkpoints(tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_gradient_checkpointing_trains_the_same_weights(tiny_model, pairs_file, tmp_path):
    """Recomputing activations saves memory, not learning: both models end bit-for-bit (close) equal."""
    plain = run(small(tiny_model, pairs_file, tmp_path / "plain", warmup_steps=2, steps=2))
    ckpt = run(small(tiny_model, pairs_file, tmp_path / "ckpt", warmup_steps=2, steps=2, gradient_checkpointing=True))
    assert plain.status == ckpt.status == "succeeded"
    for sub in ("student", "discriminator"):
        a, b = weights(plain.final_checkpoint / sub), weights(ckpt.final_checkpoint / sub)
        assert a and a.keys() == b.keys()
        assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a), sub
