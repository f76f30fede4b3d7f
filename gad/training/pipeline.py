"""Run a whole method, stage by stage, resumably: `run(config, progress)`.

A method is a list of stages (see `plan_stages`):
    gad        warmup [generator CE + D on fresh samples, first 10 steps D only] -> adversarial
    seqkd      seqkd  [generator CE only]
    offpolicy  seqkd -> disc [D against the frozen student] -> adversarial [frozen D]
Ablations turn off the generator or the discriminator part of gad's warmup.

Each stage starts from the previous stage's final checkpoint (student and discriminator), and
its KL reference is that starting student. Resuming finds the newest complete checkpoint, drops
metrics logged after it, skips finished stages and continues the interrupted one from there with
everything that decides the next step: weights, optimizer moments, RNG state, the position in the
stage's data order (which is a pure function of seed and epoch, see trainers.EpochRepeatSampler).
A resume with other inputs or settings is refused (gad/training/identity.py).

A checkpoint may also come from another plan: a fork (gad/training/fork.py) copies a parent's checkpoint
into a new folder whose settings differ. `stage_start` decides what such a checkpoint gives the
stage that contains it; learning rates and weight decay always come from the settings.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from gad.data.examples import DataError, load_examples, render_prompt, split_examples
from gad.training.config import ConfigError, RunConfig, check_plan, method_warnings, planned_steps
from gad.training.fork import fork_message, read_fork
from gad.training.identity import check_resume, input_identity, write_records
from gad.training.progress import JsonlProgress, MultiProgress, Progress
from gad.training.rundir import checkpoint_step, discriminator_dir, link_or_copy, list_checkpoints, student_dir


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
    """The method's stages with their step counts; a stage of 0 steps is left out (a Trainer
    given max_steps=0 would fall back to a whole epoch)."""
    steps = planned_steps(cfg, n_train)
    if cfg.method == "seqkd":
        stages = [Stage("seqkd", steps["seqkd"], cfg.seqkd_lr, True, False)]
    elif cfg.method == "offpolicy":
        stages = [Stage("seqkd", steps["seqkd"], cfg.seqkd_lr, True, False),
                  Stage("disc", steps["disc"], cfg.seqkd_lr, False, True),
                  Stage("adversarial", steps["adversarial"], cfg.lr, True, True, update_discriminator=False)]
    else:
        stages = [Stage("warmup", steps["warmup"], cfg.warmup_lr, cfg.generator_warmup, cfg.discriminator_warmup,
                        disc_only_steps=cfg.disc_only_steps if cfg.discriminator_warmup else 0),
                  Stage("adversarial", steps["adversarial"], cfg.lr, True, True)]
    return [s for s in stages if s.steps > 0]


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
@dataclass(frozen=True)
class StageStart:
    """Where a stage begins, given the run folder's checkpoints (see `stage_start`)."""
    resume: tuple[int, Path, dict] | None  # checkpoint inside the stage to continue from; None: a fresh stage
    stage_step: int                        # steps of this stage already done
    continues: bool                        # `resume` was written by this same kind of stage
    reference: Path | None                 # checkpoint whose student is the KL reference; None: cfg.student
    reference_step: int                    # its global step (0: the original student)
    note: str | None = None                # what the user should know about this start


def stage_start(stage: Stage, offset: int, ckpts: list[tuple[int, Path, dict]]) -> StageStart:
    """Decide how `stage` (global steps offset+1 .. offset+steps) begins. Pure.

    - No checkpoint inside the stage: a fresh stage from the checkpoint at `offset`, which is also
      its KL reference.
    - The newest checkpoint lies inside the stage and was written by the same kind of stage: the
      stage continues it (optimizer moments, RNG, data position) and keeps the reference that
      checkpoint recorded, which for a fork is the parent's stage start.
    - It was written by another kind of stage (a fork that changed the method or the stage
      lengths): weights and RNG carry over; optimizer moments start fresh, as at any stage
      boundary, since they belong to another loss; the KL reference is the student at that step.
    """
    by_step = {s: p for s, p, _ in ckpts}
    newest = ckpts[-1] if ckpts else None
    if newest is None or not offset < newest[0] < offset + stage.steps:
        if offset == 0:
            return StageStart(None, 0, False, None, 0)
        if offset in by_step:
            return StageStart(None, 0, False, by_step[offset], offset)
        return StageStart(None, 0, False, None, 0, note=f"no checkpoint at step {offset} (start of {stage.name}): "
                                                         f"its KL reference is the original student")
    step, path, meta = newest
    g = step - offset
    if meta.get("stage") != stage.name:
        return StageStart(newest, g, False, path, step, note=(
            f"{stage.name} starts at step {step} from a {meta.get('stage')} checkpoint: weights and RNG carry "
            f"over, optimizer moments start fresh, and the KL reference is the student at step {step}"))
    ref = meta.get("reference_step", step - meta.get("stage_step", g))
    if ref == 0:
        return StageStart(newest, g, True, None, 0)
    if ref in by_step:
        return StageStart(newest, g, True, by_step[ref], ref)
    return StageStart(newest, g, True, None, 0, note=f"no checkpoint at step {ref} (start of {stage.name}): "
                                                     f"its KL reference is the original student")


def resume_folder(start: StageStart, stage: Stage, run_dir: Path) -> Path | None:
    """The folder handed to Trainer.train(resume_from_checkpoint=...), or None for a fresh stage.

    A checkpoint of this very stage at this very stage step is used as it is. Otherwise (a fork's
    checkpoint from another plan) the checkpoint's student folder is linked into a scratch folder
    whose trainer state says `stage_step`, so the Trainer restores weights and RNG and skips to
    that position of this stage's data order; optimizer and scheduler files are left out unless
    the stage continues, so moments start fresh.
    """
    if start.resume is None:
        return None
    step, path, meta = start.resume
    src = student_dir(path)
    if start.continues and meta.get("stage_step") == start.stage_step:
        return src
    from transformers.trainer_callback import TrainerState

    rank = int(os.environ.get("RANK", "0"))  # one folder per process: no rank waits for another's files
    dest = run_dir / ".trl" / stage.name / f"entry-{step}-rank{rank}"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    fresh_moments = {"optimizer.pt", "scheduler.pt"} if not start.continues else set()
    for f in src.iterdir():
        if f.is_file() and f.name != "trainer_state.json" and f.name not in fresh_moments:
            link_or_copy(f, dest / f.name)
    state = TrainerState.load_from_json(str(src / "trainer_state.json")) \
        if (src / "trainer_state.json").is_file() else TrainerState()
    state.global_step, state.log_history = start.stage_step, []
    state.save_to_json(str(dest / "trainer_state.json"))
    return dest


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

    from gad.training.modeling import load_tokenizer, token_info

    run_dir = cfg.output_dir
    is_main = int(os.environ.get("RANK", "0")) == 0
    ckpts = list_checkpoints(run_dir)
    if cfg.use_vllm:  # say it now, not after the first stage has trained
        from gad.llm.generation import require_vllm

        require_vllm()

    try:
        examples = load_examples(cfg.data, cfg.teacher_responses, require_response=True,
                                 skip_missing=cfg.skip_missing_responses, limit=cfg.max_examples)
    except FileNotFoundError as err:
        raise DataError(cfg.data, str(err)) from None
    # Before anything in the folder is touched: a resume must see the inputs and settings it started with.
    identity = check_resume(run_dir, cfg) if ckpts else input_identity(cfg)
    train, test = split_examples(examples, cfg.test_fraction, cfg.seed)
    tokenizer = load_tokenizer(cfg.student, cfg.trust_remote_code)
    info = token_info(tokenizer, cfg.student if Path(cfg.student).exists() else None)
    data = tokenize_examples(train, tokenizer, cfg, info)
    if cfg.batch_size > len(data):
        raise ConfigError(f"batch_size {cfg.batch_size} is larger than the {len(data)} training prompts in "
                          f"{cfg.data}: lower --batch-size (a step needs a full batch of prompts)")
    check_plan(cfg, len(data))
    stages = plan_stages(cfg, len(data))
    total = sum(s.steps for s in stages)
    resume_step = ckpts[-1][0] if ckpts else 0
    fork = read_fork(run_dir)
    if resume_step > total or (fork is not None and resume_step == fork["step"] >= total):
        plan = " + ".join(f"{s.name} {s.steps}" for s in stages)
        raise ConfigError(f"steps: {run_dir} continues from checkpoint step-{resume_step}, but these settings plan "
                          f"{total} steps ({plan}), so nothing is left to train; plan more steps than {resume_step}",
                          field="steps")
    warnings = method_warnings(cfg)

    jsonl = JsonlProgress(run_dir)
    progress = MultiProgress(jsonl, progress) if progress is not None else jsonl
    if is_main:
        write_records(run_dir, cfg, identity)
        (run_dir / "split.json").write_text(json.dumps({"train": [e.id for e in train],
                                                         "test": [e.id for e in test]}))
        jsonl.truncate_after(resume_step)
        for path in (jsonl.metrics_path, jsonl.samples_path):
            path.touch()  # both files exist from the start, even before the first record
        for w in warnings:
            progress.message(f"warning: {w}")
        if fork is not None and resume_step == fork["step"]:
            progress.message(fork_message(fork))
        elif resume_step:
            progress.message(f"resuming {run_dir} from checkpoint step-{resume_step}")

    monitor = build_monitor(cfg, test, tokenizer, info, stages)
    if is_main and monitor is None and cfg.disc_eval_every and any(s.discriminator for s in stages):
        progress.message("note: the discriminator-quality monitor needs held-out teacher responses: set "
                         "test_fraction (e.g. 0.1) or held_out to see whether the discriminator learns anything")

    torch.manual_seed(cfg.seed)
    offset, last_ckpt, status, checksums = 0, None, "succeeded", None
    for stage in stages:
        end = offset + stage.steps
        done = [c for c in ckpts if c[0] <= end]
        if ckpts and ckpts[-1][0] >= end:   # finished earlier
            last_ckpt = next((p for s, p, _ in reversed(done)), ckpts[-1][1])
            offset = end
            continue
        start = stage_start(stage, offset, ckpts)
        if is_main and start.note:
            progress.message(start.note)
        if is_main:
            progress.stage_started(stage.name, offset + 1, end, total)
        trainer = build_stage(StageInputs(cfg, stage, data, tokenizer, info, run_dir, offset, progress, start,
                                          monitor=monitor, fork_step=fork["step"] if fork is not None else None))
        folder = resume_folder(start, stage, run_dir)
        trainer.train(resume_from_checkpoint=str(folder) if folder else None)
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
    if is_main:
        from gad.training.plots import health_warnings, plot_run, read_metrics

        health = health_warnings(read_metrics(run_dir))
        for w in health:
            progress.message(f"warning: {w}")
        warnings += health
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


def build_monitor(cfg: RunConfig, test, tokenizer, info, stages: list[Stage]):
    """The held-out discriminator check (gad.training.monitor), or None: no stage holds D, no held-out pairs (the test
    split, else the `held_out` file), or it is off."""
    if not cfg.disc_eval_every or not any(s.discriminator for s in stages):
        return None
    if not test and cfg.held_out:
        try:
            test = load_examples(cfg.held_out, require_response=True, skip_missing=True)
        except FileNotFoundError as err:
            raise DataError(cfg.held_out, str(err)) from None
    if not test:
        return None
    from gad.training.modeling import autocast_dtype
    from gad.training.monitor import DiscriminatorMonitor, HeldOutPrompt

    held = [HeldOutPrompt(t.prompt_ids, t.teacher_ids)
            for t in tokenize_examples(test[: cfg.disc_eval_prompts], tokenizer, cfg, info)]
    teacher = None
    if cfg.monitor_teacher:
        from gad.llm.generation import load_model

        teacher = load_model(cfg.monitor_teacher, trust_remote_code=cfg.trust_remote_code).model
        if teacher.get_input_embeddings().num_embeddings < len(tokenizer):
            raise ConfigError(f"monitor_teacher: {cfg.monitor_teacher} has a smaller vocabulary than the student's "
                              f"tokenizer; the white-box check needs the student's tokens", field="monitor_teacher")
    return DiscriminatorMonitor(held, info, every=cfg.disc_eval_every, samples=cfg.disc_eval_samples,
                                max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                                seed=cfg.seed, teacher_model=teacher, autocast=autocast_dtype(cfg.dtype))


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

    from gad.training.modeling import autocast_dtype

    compute = autocast_dtype(cfg.dtype)  # the Trainer autocasts; master weights stay as loaded
    return dict(
        output_dir=str(run_dir / ".trl" / stage.name), max_steps=stage.steps, learning_rate=stage.lr,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.grad_clip, logging_steps=1, save_strategy="no",  # our callback decides saves
        # data_seed: the supervised stages' order is accelerate's seedable sampler, seed data_seed + epoch,
        # so a resume in any epoch sees the same batches (GRPO: trainers.EpochRepeatSampler).
        report_to=[], seed=cfg.seed, data_seed=cfg.seed, bf16=compute == torch.bfloat16, fp16=compute == torch.float16,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, save_only_model=False,
    )


def discriminator_source(cfg: RunConfig, resume: Path | None, start_ckpt: Path | None,
                         fork_step: int | None) -> Path | None:
    """The saved discriminator a stage starts from, or None for a fresh head on the original student.

    The checkpoint the stage resumes comes first, then the one it starts from. A checkpoint inherited from a
    fork's parent (step <= fork_step) is skipped when the fork asked for a fresh discriminator.
    """
    for ck in (resume, start_ckpt):
        if ck is None or not discriminator_dir(ck).is_dir():
            continue
        if fork_step is not None and checkpoint_step(ck) <= fork_step and cfg.fork_discriminator == "fresh":
            continue
        return discriminator_dir(ck)
    return None


@dataclass(frozen=True)
class StageInputs:
    """Everything one stage's trainer is built from."""
    cfg: RunConfig
    stage: Stage
    data: list[TokenizedExample]
    tokenizer: object
    info: object                      # gad.training.modeling.TokenInfo
    run_dir: Path
    offset: int                       # global steps done before this stage
    progress: Progress
    start: StageStart = StageStart(None, 0, False, None, 0)  # where the stage begins (default: fresh)
    monitor: object = None            # gad.training.monitor.DiscriminatorMonitor, or None
    fork_step: int | None = None      # the parent's step, for a fork

    @property
    def resume(self) -> Path | None:
        """The checkpoint the Trainer resumes from (its weights load over the reference's)."""
        return self.start.resume[1] if self.start.resume else None

    @property
    def disc_warmup_done_at(self) -> int | None:
        return self.start.resume[2].get("disc_warmup_done_at") if self.start.resume and self.start.continues else None


def build_stage(inputs: StageInputs):
    """The stage's trainer. The policy is loaded from the stage's KL reference (`start.reference`, else
    cfg.student); the Trainer's resume then loads `resume`'s weights over it. When the stage continues its own
    checkpoint, the discriminator's optimizer moments carry over too."""
    cfg, stage, data, tokenizer, info, run_dir = (inputs.cfg, inputs.stage, inputs.data, inputs.tokenizer,
                                                  inputs.info, inputs.run_dir)
    start_ckpt, resume, offset = inputs.start.reference, inputs.resume, inputs.offset
    from datasets import Dataset
    from trl import GRPOConfig, SFTConfig

    from gad.training.discriminator import Discriminator
    from gad.training.modeling import autocast_dtype, load_discriminator, load_student, lora_config, process_device
    from gad.training.trainers import AdversarialTrainer, SeqKDTrainer, StageContext, WarmupTrainer

    student_path = str(student_dir(start_ckpt)) if start_ckpt else cfg.student
    student = load_student(student_path, cfg)
    peft = lora_config(cfg, "CAUSAL_LM") if cfg.lora and not start_ckpt else None

    disc = None
    if stage.discriminator:
        disc_dir = discriminator_source(cfg, resume, start_ckpt, inputs.fork_step)
        disc_model = load_discriminator(str(disc_dir) if disc_dir else cfg.student, cfg, info.pad_id,
                                        fresh_head_seed=None if disc_dir else cfg.seed)
        if cfg.gradient_checkpointing:
            disc_model.config.use_cache = False
            disc_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        # The trainer moves the student to this process's accelerator later; D goes there now.
        disc_model.to(process_device())
        disc = Discriminator(disc_model, info, lr=cfg.disc_lr, weight_decay=cfg.weight_decay,
                             grad_clip=cfg.disc_grad_clip, trainable=stage.update_discriminator,
                             autocast=autocast_dtype(cfg.dtype))
        if inputs.start.continues and resume is not None and disc_dir == discriminator_dir(resume):
            disc.load_optimizer(disc_dir)

    adversarial_gad = stage.name == "adversarial" and stage.update_discriminator
    ctx = StageContext(stage.name, run_dir, offset, inputs.progress, info, tokenizer, disc,
                       stage.update_discriminator, cfg.sample_every, cfg.save_steps, inputs.start.reference_step,
                       monitor=inputs.monitor, disc_steps=cfg.disc_steps_per_step,
                       disc_warmup_steps=cfg.disc_warmup_steps if adversarial_gad else 0,
                       disc_warmup_target=cfg.disc_warmup_target if adversarial_gad else None,
                       disc_warmup_done_at=inputs.disc_warmup_done_at)
    common = _common_args(cfg, stage, run_dir)

    if stage.name == "adversarial":
        per_device_prompts = _per_device(cfg, cfg.batch_size)
        rows = [{"prompt": d.prompt_text, "prompt_ids": d.prompt_ids, "teacher_ids": d.teacher_ids,
                 "example_index": d.index} for d in data]
        args = GRPOConfig(
            **common, per_device_train_batch_size=per_device_prompts * cfg.group_size,
            num_generations=cfg.group_size, max_completion_length=cfg.max_new_tokens,
            temperature=cfg.temperature, top_p=cfg.top_p, beta=cfg.kl_coef, epsilon=cfg.clip_range,
            scale_rewards="group", remove_unused_columns=False, gradient_checkpointing=cfg.gradient_checkpointing,
            **_vllm_grpo_args(cfg))
        return AdversarialTrainer(model=student, args=args, train_dataset=Dataset.from_list(rows),
                                  processing_class=tokenizer, peft_config=peft, ctx=ctx,
                                  prompt_lookup={d.prompt_text: d.prompt_ids for d in data})

    rows = [{"input_ids": d.prompt_ids + d.teacher_ids,
             "completion_mask": [0] * len(d.prompt_ids) + [1] * len(d.teacher_ids)} for d in data]
    args = SFTConfig(**common, per_device_train_batch_size=_per_device(cfg, cfg.batch_size),
                     max_length=cfg.max_prompt_length + cfg.max_new_tokens + 1, completion_only_loss=True,
                     packing=False, gradient_checkpointing=cfg.gradient_checkpointing, dataset_num_proc=None)
    kwargs = dict(model=student, args=args, train_dataset=Dataset.from_list(rows),
                  processing_class=tokenizer, peft_config=peft, ctx=ctx)
    sampling = dict(n=cfg.group_size, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                    top_p=cfg.top_p)
    vllm = _vllm_sampler_args(cfg)
    if disc is None and stage.train_generator:
        return SeqKDTrainer(**kwargs, sampling=sampling, vllm=vllm)
    return WarmupTrainer(**kwargs, train_generator=stage.train_generator,
                         disc_only_steps=stage.disc_only_steps, sampling=sampling, vllm=vllm)


def _vllm_grpo_args(cfg: RunConfig) -> dict:
    """TRL's GRPO settings for vLLM rollouts (colocated, or a `trl vllm-serve` server)."""
    if not cfg.use_vllm:
        return {"use_vllm": False}
    from gad.llm.generation import require_vllm

    require_vllm()
    args = {"use_vllm": True, "vllm_mode": cfg.vllm_mode,
            "vllm_max_model_length": cfg.max_prompt_length + cfg.max_new_tokens + 1}
    if cfg.vllm_mode == "server":
        args["vllm_server_base_url"] = cfg.vllm_server_url
    else:
        args["vllm_gpu_memory_utilization"] = cfg.vllm_gpu_memory_utilization
    return args


def _vllm_sampler_args(cfg: RunConfig) -> dict | None:
    """The same engine settings for the supervised stages' samples (None: transformers)."""
    if not cfg.use_vllm:
        return None
    return {"mode": cfg.vllm_mode, "server_url": cfg.vllm_server_url,
            "gpu_memory_utilization": cfg.vllm_gpu_memory_utilization,
            "max_model_length": cfg.max_prompt_length + cfg.max_new_tokens + 1}
