"""The training stages on TRL: supervised (warmup / SeqKD) and adversarial (GAD on GRPO).

  WarmupTrainer (SFTTrainer): cross-entropy on teacher responses; when it holds a
      discriminator, every step also samples fresh student responses and takes one
      Bradley-Terry step on them. The first `disc_only_steps` steps skip the generator.
      SeqKD is this trainer without a discriminator.
  AdversarialTrainer (GRPOTrainer): TRL samples N responses per prompt and asks
      `DiscriminatorReward` for rewards; the reward function scores the N responses and the
      teacher's one with D, takes D's Bradley-Terry step in the same forward/backward, and returns
      the *pre-update* scores. TRL then normalises them within the group and takes the policy
      step (PPO clip, k3 KL to the stage's starting policy).

Both share `StageMixin`: global step numbering across stages, metrics to a `Progress`, and
checkpoints moved to `run/checkpoints/step-G/{student,discriminator}` (the student folder is
also a complete TRL resume folder: weights + optimizer + scheduler + RNG + trainer state).

Resume is exact at any step of any epoch: the data order of every epoch is a pure function of
(seed, epoch) (the Trainer's seedable sampler for the supervised stages, `EpochRepeatSampler` for
GRPO), so the Trainer's skip to the checkpoint's position lands on the same batch. Optimizer
*state* (moments) comes from a checkpoint; its hyperparameters (lr, weight decay) always come
from the settings, so a fork's edited settings take effect (`keep_settings`).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import GRPOTrainer, SFTTrainer
from trl.trainer.utils import RepeatSampler

from gad.training.discriminator import Discriminator, Group
from gad.training.metric_catalog import M
from gad.training.modeling import TokenInfo, split_response
from gad.training.optim import keep_settings
from gad.training.progress import Progress
from gad.training.rundir import META, PARTIAL, checkpoint_dir, discriminator_dir, student_dir

# TRL's log keys -> ours (everything else passes through with '/' turned into '_').
RENAMES = {"learning_rate": "lr", "reward": M.REWARD_MEAN, "completions/mean_length": M.STUDENT_LENGTH,
           "mean_token_accuracy": "token_accuracy"}
DROP = {"epoch", M.STEP_TIME, "total_flos", "num_tokens"}


@dataclass
class StageContext:
    """What a stage needs to know about the run around it."""
    name: str
    run_dir: Path
    step_offset: int          # global step = step_offset + this stage's step
    progress: Progress
    info: TokenInfo
    tokenizer: object
    discriminator: Discriminator | None = None
    update_discriminator: bool = True
    sample_every: int = 10
    save_steps: int = 50
    reference_step: int = 0   # global step of the checkpoint whose student is the KL reference (0: original)
    monitor: object | None = None  # gad.training.monitor.DiscriminatorMonitor: held-out checks of D
    disc_steps: int = 1            # discriminator updates per step (disc_steps_per_step)
    disc_warmup_steps: int = 0     # adversarial stage: the first N stage steps train D only
    disc_warmup_target: float | None = None   # ... ending early once held-out accuracy reaches this
    disc_warmup_done_at: int | None = None    # global step where that target was reached (kept in meta.json)


class _StageCallback(TrainerCallback):
    def __init__(self, trainer: StageMixin):
        self.t = trainer
        self._t0 = time.perf_counter()
        self._step_time = None

    def on_step_begin(self, args, state, control, **kw):
        self._t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self._step_time = time.perf_counter() - self._t0
        # Checkpoints fall on multiples of save_steps in *global* steps, and every stage ends on one.
        global_step = self.t.ctx.step_offset + state.global_step
        if global_step % self.t.ctx.save_steps == 0 or state.global_step >= state.max_steps:
            control.should_save = True
        self.t._monitor_discriminator(global_step)

    def on_log(self, args, state, control, logs=None, **kw):
        if not logs or "train_runtime" in logs:
            return
        if state.is_world_process_zero:
            self._report(state, logs)
        # Cancellation: rank 0 asks the Progress (after this step's metrics went out), every rank obeys.
        if _agree(state.is_world_process_zero and self.t.ctx.progress.should_stop()):
            self.t.stopped = True
            control.should_training_stop = True
            control.should_save = True

    def _report(self, state, logs) -> None:
        record = {"step": self.t.ctx.step_offset + state.global_step, "stage": self.t.ctx.name}
        for key, value in logs.items():
            if key in DROP:
                continue
            record[RENAMES.get(key, key.replace("/", "_"))] = value
        if not getattr(self.t, "generator_active", True):  # frozen generator: no loss to report
            for key in ("loss", M.GRAD_NORM, "lr"):
                record.pop(key, None)
        record[M.STEP_TIME] = self._step_time
        self.t.ctx.progress.metrics(record)


def _agree(flag: bool) -> bool:
    """Rank 0's decision, broadcast to all ranks (a no-op with one process)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    box = [flag]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


class StageMixin:
    ctx: StageContext
    stopped: bool = False

    def _init_stage(self, ctx: StageContext) -> None:
        self.ctx = ctx
        self.stopped = False
        self.remove_callback(PrinterCallback)  # our Progress reports instead of raw log dicts
        self.add_callback(_StageCallback(self))

    @property
    def global_step(self) -> int:
        return self.ctx.step_offset + self.state.global_step

    def _record(self, name: str, value: float) -> None:
        self._metrics["train"][name].append(float(value))

    def _monitor_discriminator(self, global_step: int) -> None:
        """The held-out check of D (gad.training.monitor), filed with this step's metrics. Every rank runs it, with the
        same seed, so sharded models stay in lockstep; it never touches training's random stream."""
        ctx = self.ctx
        if ctx.monitor is None or ctx.discriminator is None or not ctx.monitor.due(global_step):
            return
        started = time.perf_counter()
        figures = ctx.monitor.evaluate(self.accelerator.unwrap_model(self.model), ctx.discriminator, global_step)
        figures[M.DISC_EVAL_TIME] = time.perf_counter() - started  # what the check costs, next to step_time
        for k, v in figures.items():
            self._record(k, v)
        acc = figures.get(M.DISC_EVAL_ACCURACY)
        if ctx.disc_warmup_target is not None and ctx.disc_warmup_done_at is None and acc == acc and acc is not None \
                and acc >= ctx.disc_warmup_target and self.state.global_step < ctx.disc_warmup_steps:
            ctx.disc_warmup_done_at = global_step
            if self.accelerator.is_main_process:
                ctx.progress.message(f"discriminator warmup reached held-out accuracy {acc:.2f} >= "
                                     f"{ctx.disc_warmup_target} at step {global_step}: the policy trains from here")

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        # Every rank writes its own rng_state_{rank}.pth into the Trainer's folder: wait for all of them
        # before rank 0 moves it, or a late rank writes into a folder that is gone (a crash under load, or
        # a checkpoint without that rank's RNG state).
        self.accelerator.wait_for_everyone()
        src = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        dest = checkpoint_dir(self.ctx.run_dir, self.global_step)
        if self.args.should_save:
            partial = dest.with_name(dest.name + PARTIAL)
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            shutil.move(str(src), str(student_dir(partial)))
            self.ctx.tokenizer.save_pretrained(student_dir(partial))
            if self.ctx.discriminator is not None:
                self.ctx.discriminator.save(discriminator_dir(partial), self.ctx.tokenizer)
            # meta.json is written last: a folder without it is an interrupted save.
            (partial / META).write_text(json.dumps({
                "global_step": self.global_step, "stage": self.ctx.name,
                "stage_step": self.state.global_step, "stage_max_steps": self.state.max_steps,
                "reference_step": self.ctx.reference_step, "disc_warmup_done_at": self.ctx.disc_warmup_done_at}))
            shutil.rmtree(dest, ignore_errors=True)  # same step saved again after a resume
            partial.rename(dest)
            self.ctx.progress.checkpoint(self.global_step, str(dest))
        self.accelerator.wait_for_everyone()

    def _load_optimizer_and_scheduler(self, checkpoint):
        with keep_settings(self.optimizer, self.lr_scheduler):
            super()._load_optimizer_and_scheduler(checkpoint)

    @staticmethod
    def _split_batch(inputs) -> tuple[list[list[int]], list[list[int]]]:
        """A supervised batch back into (prompt ids, teacher response ids) per row: labels mark the response."""
        prompts, teachers = [], []
        for ids, attn, labels in zip(inputs["input_ids"].tolist(), inputs["attention_mask"].tolist(),
                                     inputs["labels"].tolist()):
            real = [(t, lab) for t, a, lab in zip(ids, attn, labels) if a]
            prompts.append([t for t, lab in real if lab == -100])
            teachers.append([t for t, lab in real if lab != -100])
        return prompts, teachers

    def _teacher_groups(self, prompt_ids, teacher_ids, students) -> list[Group]:
        groups = []
        for p, t, s in zip(prompt_ids, teacher_ids, students):
            t_ids, t_fin = split_response(t, self.ctx.info)
            groups.append(Group(list(p), t_ids, t_fin, s))
        return groups

    def _sample_due(self) -> bool:
        """Sample records on a stage's first step and every `sample_every` steps after."""
        gs = self.state.global_step
        return gs == 0 or (gs + 1) % self.ctx.sample_every == 0

    def _write_sample(self, groups: list[Group], scores: list[list[float]],
                      advantages: list[float] | None = None) -> None:
        if not self.accelerator.is_main_process or not groups:
            return
        if not self._sample_due():
            return
        g, tok = groups[0], self.ctx.tokenizer
        self.ctx.progress.sample({
            "step": self.global_step + 1, "stage": self.ctx.name,
            "prompt": tok.decode(g.prompt_ids, skip_special_tokens=False),
            "teacher": tok.decode(g.teacher_ids, skip_special_tokens=True),
            "students": [{"text": tok.decode(ids, skip_special_tokens=True), "finished": fin,
                          "score": scores[0][i] if scores else None,
                          "advantage": advantages[i] if advantages else None}
                         for i, (ids, fin) in enumerate(g.student)],
        })


# ----------------------------------------------------------------------------------------------
# Supervised stages: GAD warmup, SeqKD, offpolicy discriminator training
# ----------------------------------------------------------------------------------------------
class SamplingMixin:
    """Where a supervised stage's student samples come from: transformers on the live model, or vLLM
    (TRL's engine, weights synced after each optimizer step) when the run sets use_vllm."""

    def _init_sampling(self, sampling: dict | None, vllm: dict | None) -> None:
        self.sampling, self._vllm_options, self._sampler = sampling or {}, vllm, None

    def sample(self, prompts: list[list[int]], **overrides):
        if self._sampler is None:
            from gad.llm.generation import TransformersSampler, VllmSampler

            self._sampler = VllmSampler(self, self.ctx.info, **self.sampling, **self._vllm_options) \
                if self._vllm_options is not None else TransformersSampler(self.ctx.info, **self.sampling)
        return self._sampler(self.accelerator.unwrap_model(self.model), prompts, **overrides)


class WarmupTrainer(SamplingMixin, StageMixin, SFTTrainer):
    def __init__(self, *args, ctx: StageContext, train_generator: bool = True, disc_only_steps: int = 0,
                 sampling: dict | None = None, vllm: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_stage(ctx)
        self.train_generator = train_generator
        self.disc_only_steps = disc_only_steps
        self._init_sampling(sampling, vllm)

    def training_step(self, model, inputs, num_items_in_batch=None):
        model.train()  # metrics are filed under the mode the model is in
        if self.ctx.discriminator is not None:
            self._discriminator_step(inputs)
        self.generator_active = self.train_generator and self.state.global_step >= self.disc_only_steps
        if self.generator_active:
            return super().training_step(model, inputs, num_items_in_batch)
        # Generator frozen this step: no loss, no gradient; the optimizer step is a no-op.
        return torch.zeros((), device=self.args.device)

    def _discriminator_step(self, inputs) -> None:
        """Fresh student samples for this batch's prompts, then one Bradley-Terry step."""
        prompt_ids, teacher_ids = self._split_batch(inputs)
        students = self.sample(prompt_ids)
        groups = self._teacher_groups(prompt_ids, teacher_ids, students)
        scores, metrics = self.ctx.discriminator.step(groups, update=self.ctx.update_discriminator,
                                                      repeats=self.ctx.disc_steps)
        for k, v in metrics.items():
            self._record(k, v)
        self._record(M.STUDENT_LENGTH, sum(len(r) for g in groups for r, _ in g.student) /
                     max(1, sum(len(g.student) for g in groups)))
        self._record(M.TEACHER_LENGTH, sum(len(g.teacher_ids) for g in groups) / len(groups))
        self._write_sample(groups, scores)


class SeqKDTrainer(SamplingMixin, StageMixin, SFTTrainer):
    """Plain supervised fine-tuning on teacher responses, with the stage plumbing.

    Every `sample_every` steps it also samples the group for one prompt of the batch, so a user
    can watch what the student writes (no discriminator: scores and advantages are null).
    """

    def __init__(self, *args, ctx: StageContext, sampling: dict | None = None, vllm: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_stage(ctx)
        self._init_sampling(sampling, vllm)

    def training_step(self, model, inputs, num_items_in_batch=None):
        labels = inputs["labels"]
        self._record(M.TEACHER_LENGTH, float((labels != -100).sum(dim=1).float().mean()))
        if self.sampling and self.accelerator.is_main_process and self._sample_due():
            prompts, teachers = self._split_batch({k: inputs[k][:1] for k in ("input_ids", "attention_mask", "labels")})
            prompt, teacher = prompts[0], teachers[0]
            students = self.sample([prompt])
            self._write_sample(self._teacher_groups([prompt], [teacher], students), [])
        return super().training_step(model, inputs, num_items_in_batch)


# ----------------------------------------------------------------------------------------------
# Adversarial stage: GRPO with the discriminator as an online-trained reward
# ----------------------------------------------------------------------------------------------
class DiscriminatorReward:
    """TRL reward function: D's score of each completion, with D's own update folded in.

    Dataset columns arrive in kwargs, one entry per completion, in contiguous blocks per prompt.
    """

    __name__ = "discriminator"

    def __init__(self):
        self.trainer: AdversarialTrainer | None = None
        self.last: tuple[list[Group], list[list[float]]] | None = None

    def __call__(self, prompts, completions, completion_ids, prompt_ids, teacher_ids, example_index, **kwargs):
        t = self.trainer
        info = t.ctx.info
        groups: list[Group] = []
        prev = None
        for i, ids in enumerate(completion_ids):
            if example_index[i] != prev:  # a new prompt's block starts
                t_ids, t_fin = split_response(teacher_ids[i], info)
                groups.append(Group(list(prompt_ids[i]), t_ids, t_fin, []))
                prev = example_index[i]
            groups[-1].student.append(split_response(ids, info))
        training = t.model.training
        update = training and t.ctx.update_discriminator
        # TRL may call us under no_grad; D's update needs autograd.
        with torch.inference_mode(False), torch.enable_grad():
            scores, metrics = t.ctx.discriminator.step(groups, update=update, repeats=t.ctx.disc_steps)
        if training:
            for k, v in metrics.items():
                t._record(k, v)
            t._record(M.TEACHER_LENGTH, sum(len(g.teacher_ids) for g in groups) / len(groups))
        self.last = (groups, scores)
        return [s for group in scores for s in group]


class EpochRepeatSampler(RepeatSampler):
    """TRL's RepeatSampler, with each epoch's order a pure function of (seed, epoch).

    TRL's sampler draws every epoch's permutation from one generator seeded once, so a resume in
    epoch k (a new sampler) replays epoch 0's order: prompts repeat or are skipped. The Trainer
    calls `set_epoch` before every epoch, including the one it resumes in.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle:
            self.generator.manual_seed((self.seed or 0) + self.epoch)
        yield from super().__iter__()


class AdversarialTrainer(StageMixin, GRPOTrainer):
    def __init__(self, *args, ctx: StageContext, prompt_lookup: dict[str, list[int]], **kwargs):
        self.reward = DiscriminatorReward()
        super().__init__(*args, reward_funcs=[self.reward], **kwargs)
        self.reward.trainer = self
        self._prompt_lookup = prompt_lookup
        self._init_stage(ctx)

    def policy_frozen(self) -> bool:
        """A discriminator-warmup step (disc_warmup_steps): D trains on the rollouts, the policy waits."""
        ctx = self.ctx
        return self.state.global_step < ctx.disc_warmup_steps and ctx.disc_warmup_done_at is None

    def training_step(self, model, inputs, num_items_in_batch):
        self.generator_active = not self.policy_frozen()
        if self.generator_active:
            return super().training_step(model, inputs, num_items_in_batch)
        # Rollouts and D's update happen in _prepare_inputs (the reward function); no policy loss, no
        # gradient, so the optimizer step that follows changes nothing.
        model.train()
        self._prepare_inputs(inputs)
        self._step += 1
        return torch.zeros((), device=self.args.device)

    def _get_train_sampler(self, dataset=None):
        base = super()._get_train_sampler(dataset)
        return EpochRepeatSampler(base.data_source, mini_repeat_count=base.mini_repeat_count,
                                  batch_size=base.batch_size, repeat_count=base.repeat_count,
                                  shuffle=base.shuffle, seed=base.seed)

    def _tokenize_prompts(self, prompts: list):
        # The exact ids the data pipeline built (left-truncated), so D sees what the policy saw.
        return [self._prompt_lookup[p] for p in prompts], None, {}

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self.model.training and self.reward.last is not None:
            groups, scores = self.reward.last
            n = len(groups[0].student) if groups else 0
            self._write_sample(groups, scores, output["advantages"][:n].tolist())
        return output
