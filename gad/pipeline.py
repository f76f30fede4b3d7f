"""Run a whole method, stage by stage, resumably: `run(config, progress)`.

A method is a list of stages (see `plan_stages`):
    gad        warmup [generator CE + D on fresh samples, first 10 steps D only] -> adversarial
    seqkd      seqkd  [generator CE only]
    offpolicy  seqkd -> disc [D against the frozen student] -> adversarial [frozen D]
Ablations turn off the generator or the discriminator part of gad's warmup.

Each stage starts from the previous stage's final checkpoint (student and discriminator), and
its KL reference is that starting student. Resuming finds the newest complete checkpoint, drops
metrics logged after it, skips finished stages and continues the interrupted one from there.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from gad.config import ConfigError, RunConfig
from gad.data import DataError, load_examples, render_prompt, split_examples
from gad.progress import JsonlProgress, MultiProgress, Progress


@dataclass(frozen=True)
class Stage:
    name: str            # warmup | seqkd | disc | adversarial
    steps: int
    lr: float
    train_generator: bool
    discriminator: bool  # does this stage hold a discriminator at all
    update_discriminator: bool = True
    disc_only_steps: int = 0


def plan_stages(cfg: RunConfig, n_train: int) -> list[Stage]:
    epoch = max(1, math.ceil(n_train / cfg.batch_size))
    warm = epoch if cfg.warmup_steps is None else cfg.warmup_steps
    main = epoch if cfg.steps is None else cfg.steps
    if cfg.method == "seqkd":
        return [Stage("seqkd", main, cfg.seqkd_lr, True, False)]
    if cfg.method == "offpolicy":
        disc_steps = warm if cfg.offpolicy_disc_steps is None else cfg.offpolicy_disc_steps
        stages = [Stage("seqkd", warm, cfg.seqkd_lr, True, False),
                  Stage("disc", disc_steps, cfg.seqkd_lr, False, True),
                  Stage("adversarial", main, cfg.lr, True, True, update_discriminator=False)]
        return [s for s in stages if s.steps > 0]
    stages = []
    if warm > 0:
        stages.append(Stage("warmup", warm, cfg.warmup_lr, cfg.generator_warmup, cfg.discriminator_warmup,
                            disc_only_steps=cfg.disc_only_steps if cfg.discriminator_warmup else 0))
    if main > 0:
        stages.append(Stage("adversarial", main, cfg.lr, True, True))
    return stages


@dataclass
class TokenizedExample:
    index: int
    prompt_text: str
    prompt_ids: list[int]
    teacher_ids: list[int]   # response ids, + end-of-turn when the response was not truncated


def tokenize_examples(examples, tokenizer, cfg: RunConfig, info) -> list[TokenizedExample]:
    out = []
    for i, ex in enumerate(examples):
        text = render_prompt(ex.messages, tokenizer, cfg.prompt_format)
        p = tokenizer(text, add_special_tokens=False)["input_ids"][-cfg.max_prompt_length:]
        r = tokenizer(ex.response, add_special_tokens=False)["input_ids"]
        r = r[: cfg.max_new_tokens] if len(r) >= cfg.max_new_tokens else r + [info.eot_id]
        # The text TRL is given must map back to exactly these ids (see AdversarialTrainer).
        out.append(TokenizedExample(i, tokenizer.decode(p), p, r))
    return out


# ----------------------------------------------------------------------------------------------
# Checkpoints and resume
# ----------------------------------------------------------------------------------------------
def list_checkpoints(run_dir: Path) -> list[tuple[int, Path, dict]]:
    """Complete checkpoints (meta.json present), oldest first."""
    found = []
    for path in (run_dir / "checkpoints").glob("step-*"):
        meta = path / "meta.json"
        if path.is_dir() and meta.is_file() and not path.name.endswith(".partial"):
            found.append((int(path.name.split("-")[1]), path, json.loads(meta.read_text())))
    return sorted(found, key=lambda x: x[0])


def _check_same_run(run_dir: Path, cfg: RunConfig) -> None:
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return
    old = yaml.safe_load(saved.read_text()) or {}
    new = cfg.model_dump()
    ignore = {"output"}  # the folder may have moved
    diff = [k for k in new if k not in ignore and old.get(k) != new[k]]
    if diff and list_checkpoints(run_dir):
        changes = ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in diff)
        raise ConfigError(f"{run_dir} already holds a run with other settings ({changes}); "
                          f"resume with the same settings or choose a new --output")


@dataclass
class RunResult:
    run_dir: Path
    status: str                 # succeeded | cancelled
    global_step: int
    total_steps: int
    final_checkpoint: Path | None
    warnings: list[str]


def run(cfg: RunConfig, progress: Progress | None = None) -> RunResult:
    """Train `cfg.method` into `cfg.output`, resuming from its newest checkpoint if there is one."""
    import torch
    from datasets import Dataset

    from gad.modeling import load_tokenizer, token_info

    run_dir = cfg.output_dir
    is_main = int(os.environ.get("RANK", "0")) == 0
    _check_same_run(run_dir, cfg)

    try:
        examples = load_examples(cfg.data, cfg.teacher_responses, require_response=True, limit=cfg.max_examples)
    except FileNotFoundError as err:
        raise DataError(cfg.data, str(err)) from None
    train, test = split_examples(examples, cfg.test_fraction, cfg.seed)
    tokenizer = load_tokenizer(cfg.student, cfg.trust_remote_code)
    info = token_info(tokenizer, cfg.student if Path(cfg.student).exists() else None)
    data = tokenize_examples(train, tokenizer, cfg, info)
    if cfg.batch_size > len(data):
        raise ConfigError(f"batch_size {cfg.batch_size} is larger than the {len(data)} training prompts in "
                          f"{cfg.data}: lower --batch-size (a step needs a full batch of prompts)")
    stages = plan_stages(cfg, len(data))
    total = sum(s.steps for s in stages)

    jsonl = JsonlProgress(run_dir)
    progress = MultiProgress(jsonl, progress) if progress is not None else jsonl
    ckpts = list_checkpoints(run_dir)
    resume_step = ckpts[-1][0] if ckpts else 0
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
        (run_dir / "split.json").write_text(json.dumps({"train": [e.id for e in train],
                                                         "test": [e.id for e in test]}))
        jsonl.truncate_after(resume_step)
        for path in (jsonl.metrics_path, jsonl.samples_path):
            path.touch()  # both files exist from the start, even before the first record
        if resume_step:
            progress.message(f"resuming {run_dir} from checkpoint step-{resume_step}")

    torch.manual_seed(cfg.seed)
    offset, last_ckpt, status, checksums = 0, None, "succeeded", None
    for stage in stages:
        end = offset + stage.steps
        done = [c for c in ckpts if c[0] <= end]
        if ckpts and ckpts[-1][0] >= end:   # finished earlier
            last_ckpt = next((p for s, p, _ in reversed(done)), ckpts[-1][1])
            offset = end
            continue
        start_ckpt = next((p for s, p, _ in reversed(done) if s == offset), None) if offset else None
        resume = next((p for s, p, _ in reversed(done) if offset < s < end), None)
        if offset and start_ckpt is None and is_main:
            # e.g. a folder seeded with one mid-stage checkpoint: the KL reference falls back
            progress.message(f"no checkpoint at step {offset} (start of {stage.name}): its KL reference "
                             f"is the original student")
        if is_main:
            progress.stage_started(stage.name, offset + 1, end, total)
        trainer = _build_stage(cfg, stage, data, tokenizer, info, run_dir, offset, start_ckpt, resume,
                               progress, Dataset)
        trainer.train(resume_from_checkpoint=str(resume / "student") if resume else None)
        stopped = trainer.stopped
        if not stopped and trainer.state.global_step < stage.steps:
            raise RuntimeError(f"stage {stage.name} ended after {trainer.state.global_step} of {stage.steps} steps "
                               f"without being stopped; its data loader ran dry")
        if trainer.ctx.discriminator is not None:
            checksums = _gather_checksums(trainer.ctx.discriminator)
        del trainer
        ckpts = list_checkpoints(run_dir)
        last_ckpt = ckpts[-1][1] if ckpts else None
        if stopped:
            status = "cancelled"
            break
        offset = end
    final_step = ckpts[-1][0] if ckpts else 0
    warnings = []
    if is_main:
        from gad.plots import health_warnings, plot_run, read_metrics

        warnings = health_warnings(read_metrics(run_dir))
        for w in warnings:
            progress.message(f"warning: {w}")
        plot_run(run_dir)
        (run_dir / "result.json").write_text(json.dumps({
            "status": status, "global_step": final_step, "total_steps": total,
            "final_checkpoint": str(last_ckpt) if last_ckpt else None,
            # One fingerprint per process: equal values mean every rank holds the same D.
            "discriminator_checksums": checksums,
            "warnings": warnings,
            "stages": [s.__dict__ for s in stages]}, indent=2))
        if status == "succeeded":  # TRL's scratch folders; a cancelled run keeps them for its resume
            shutil.rmtree(run_dir / ".trl", ignore_errors=True)
    progress.close()
    return RunResult(run_dir, status, final_step, total, last_ckpt, warnings)


def _gather_checksums(disc) -> list[float]:
    import torch.distributed as dist

    mine = disc.checksum()
    if not (dist.is_available() and dist.is_initialized()):
        return [mine]
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    return everyone


# ----------------------------------------------------------------------------------------------
# One stage's trainer
# ----------------------------------------------------------------------------------------------
def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _per_device(cfg: RunConfig, prompts: int) -> int:
    world = _world_size() * cfg.gradient_accumulation_steps
    if prompts % world:
        raise ConfigError(f"batch_size {prompts} must divide evenly over {_world_size()} process(es) x "
                          f"{cfg.gradient_accumulation_steps} accumulation step(s)")
    return prompts // world


def _common_args(cfg: RunConfig, stage: Stage, run_dir: Path) -> dict:
    import torch

    from gad.modeling import autocast_dtype

    compute = autocast_dtype(cfg.dtype)  # the Trainer autocasts; master weights stay as loaded
    return dict(
        output_dir=str(run_dir / ".trl" / stage.name), max_steps=stage.steps, learning_rate=stage.lr,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.grad_clip, logging_steps=1, save_strategy="no",  # our callback decides saves
        report_to=[], seed=cfg.seed, bf16=compute == torch.bfloat16, fp16=compute == torch.float16,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, save_only_model=False,
    )


def _build_stage(cfg, stage, data, tokenizer, info, run_dir, offset, start_ckpt, resume, progress, Dataset):
    from trl import GRPOConfig, SFTConfig

    from gad.discriminator import Discriminator
    from gad.modeling import autocast_dtype, load_discriminator, load_student, lora_config, process_device
    from gad.trainers import AdversarialTrainer, SeqKDTrainer, StageContext, WarmupTrainer

    student_path = str(start_ckpt / "student") if start_ckpt else cfg.student
    student = load_student(student_path, cfg)
    peft = lora_config(cfg, "CAUSAL_LM") if cfg.lora and not start_ckpt else None

    disc = None
    if stage.discriminator:
        disc_dir = None
        for ck in (resume, start_ckpt):
            if ck is not None and (ck / "discriminator").is_dir():
                disc_dir = ck / "discriminator"
                break
        disc_model = load_discriminator(str(disc_dir) if disc_dir else cfg.student, cfg, info.pad_id,
                                        fresh_head_seed=None if disc_dir else cfg.seed)
        # The trainer moves the student to this process's accelerator later; D goes there now.
        disc_model.to(process_device())
        disc = Discriminator(disc_model, info, lr=cfg.disc_lr, weight_decay=cfg.weight_decay,
                             grad_clip=cfg.disc_grad_clip, trainable=stage.update_discriminator,
                             autocast=autocast_dtype(cfg.dtype))
        if resume is not None and disc_dir == resume / "discriminator":
            disc.load_optimizer(disc_dir)

    ctx = StageContext(stage.name, run_dir, offset, progress, info, tokenizer, disc,
                       stage.update_discriminator, cfg.sample_every, cfg.save_steps)
    common = _common_args(cfg, stage, run_dir)

    if stage.name == "adversarial":
        per_device_prompts = _per_device(cfg, cfg.batch_size)
        rows = [{"prompt": d.prompt_text, "prompt_ids": d.prompt_ids, "teacher_ids": d.teacher_ids,
                 "example_index": d.index} for d in data]
        args = GRPOConfig(
            **common, per_device_train_batch_size=per_device_prompts * cfg.group_size,
            num_generations=cfg.group_size, max_completion_length=cfg.max_new_tokens,
            temperature=cfg.temperature, top_p=cfg.top_p, beta=cfg.kl_coef, epsilon=cfg.clip_range,
            scale_rewards="group", use_vllm=cfg.use_vllm, remove_unused_columns=False,
            gradient_checkpointing=False)
        return AdversarialTrainer(model=student, args=args, train_dataset=Dataset.from_list(rows),
                                  processing_class=tokenizer, peft_config=peft, ctx=ctx,
                                  prompt_lookup={d.prompt_text: d.prompt_ids for d in data})

    rows = [{"input_ids": d.prompt_ids + d.teacher_ids,
             "completion_mask": [0] * len(d.prompt_ids) + [1] * len(d.teacher_ids)} for d in data]
    args = SFTConfig(**common, per_device_train_batch_size=_per_device(cfg, cfg.batch_size),
                     max_length=cfg.max_prompt_length + cfg.max_new_tokens + 1, completion_only_loss=True,
                     packing=False, gradient_checkpointing=False, dataset_num_proc=None)
    kwargs = dict(model=student, args=args, train_dataset=Dataset.from_list(rows),
                  processing_class=tokenizer, peft_config=peft, ctx=ctx)
    sampling = dict(n=cfg.group_size, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                    top_p=cfg.top_p)
    if disc is None and stage.train_generator:
        return SeqKDTrainer(**kwargs, sampling=sampling)
    return WarmupTrainer(**kwargs, train_generator=stage.train_generator,
                         disc_only_steps=stage.disc_only_steps, sampling=sampling)
