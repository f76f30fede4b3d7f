"""Typed run configuration with the paper's defaults.

Every field carries a help text: the CLI (`gad-studio train --help`) and the studio's forms are
generated from these descriptions, so they are the single source of truth for what a knob means.

Defaults follow the GAD paper / reference code (LMOps `gad/`, verl ~0.4): group size 8,
temperature 0.8, lr 1e-6 for policy and discriminator, KL 0.001 (k3), PPO clip 0.2, gradient
clip 0.2, 256 prompts per step, 10 discriminator-only steps, a checkpoint every 50 steps.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Method = Literal["gad", "seqkd", "offpolicy"]


class ConfigError(ValueError):
    """A configuration problem a user can fix; the message says which field and how, and `field`
    names it (the first one, when several are wrong) so forms and the REST API can point at it."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


# ----------------------------------------------------------------------------------------------
# What each setting is: one kind per field, tagged on the field itself (json_schema_extra)
# ----------------------------------------------------------------------------------------------
#   method       the method menu
#   input        a file or model the run reads, named per run (never in presets); compared by content on resume
#   place        where the run writes or finds its per-run files; never compared
#   training     what the student learns; compared on resume when one of its `methods` is the run's
#   operational  how the run executes or what it reports, not what it learns; never compared
# `fixed_by_checkpoint`: a fork cannot change it (the checkpoint's weights belong to it).
KINDS = ("method", "input", "place", "training", "operational")
ALL_METHODS = ("gad", "seqkd", "offpolicy")


def _training(*methods: str, fixed_by_checkpoint: bool = False) -> dict:
    return {"kind": "training", "methods": list(methods),
            **({"fixed_by_checkpoint": True} if fixed_by_checkpoint else {})}


METHOD = {"kind": "method"}
INPUT = {"kind": "input"}
INPUT_FIXED = {"kind": "input", "fixed_by_checkpoint": True}
PLACE = {"kind": "place"}
OPERATIONAL_KIND = {"kind": "operational"}
EVERY = _training(*ALL_METHODS)
EVERY_FIXED = _training(*ALL_METHODS, fixed_by_checkpoint=True)
ADVERSARIAL = _training("gad", "offpolicy")
GAD = _training("gad")
OFFPOLICY = _training("offpolicy")
SUPERVISED_BASELINE = _training("seqkd", "offpolicy")


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # --- what to run -------------------------------------------------------------------------
    method: Method = Field("gad", json_schema_extra=METHOD, description="Training method: 'gad' (warmup then "
                           "adversarial stage), 'seqkd' (supervised fine-tuning on teacher responses, the baseline) or "
                           "'offpolicy' (SeqKD, then a discriminator trained against the frozen student, then GRPO "
                           "against that frozen discriminator).")
    student: str = Field(..., json_schema_extra=INPUT_FIXED,
                         description="Student model: a Hugging Face hub id or a local folder.")
    data: str = Field(..., json_schema_extra=INPUT,
                      description="Prompt/teacher-response file (JSONL, JSON, CSV or Parquet).")
    teacher_responses: str | None = Field(None, json_schema_extra=INPUT, description="Optional separate file of "
                                          "teacher responses (e.g. FastChat answers), joined to --data on id.")
    output: str = Field(..., json_schema_extra=PLACE,
                        description="Run folder: metrics.jsonl, samples.jsonl, checkpoints/.")
    seed: int = Field(42, json_schema_extra=EVERY,
                      description="Seed for sampling, data order, the split and head init.")

    # --- data --------------------------------------------------------------------------------
    prompt_format: Literal["chat", "plain"] = Field("chat", json_schema_extra=EVERY,
                                                    description="'chat' renders prompts with the student's chat "
                                                    "template; 'plain' uses the paper's Alpaca-style wrapper.")
    test_fraction: float = Field(0.0, ge=0.0, lt=1.0, json_schema_extra=EVERY,
                                 description="Share of prompts held out as a test split (deterministic given --seed).")
    max_prompt_length: int = Field(2048, gt=0, json_schema_extra=EVERY, description="Prompts longer than this many "
                                   "tokens keep their last tokens (the end of the conversation).")
    max_new_tokens: int = Field(1536, gt=0, json_schema_extra=EVERY, description="Maximum response length in tokens, "
                                "for student samples and (truncation of) teacher responses.")
    max_examples: int | None = Field(None, gt=0, json_schema_extra=EVERY, description="Use at most this many prompts.")
    skip_missing_responses: bool = Field(False, json_schema_extra=EVERY, description="Train on the prompts that have a "
                                         "teacher response and skip the rest (refused or failed in collection); off: a "
                                         "missing response is an error that says how many lack one.")

    # --- schedule ----------------------------------------------------------------------------
    batch_size: int = Field(256, gt=0, json_schema_extra=EVERY,
                            description="Prompts per optimiser step (over all processes).")
    group_size: int = Field(8, ge=2, json_schema_extra=ADVERSARIAL,
                            description="Student responses sampled per prompt (GRPO group).")
    warmup_steps: int | None = Field(None, ge=0, json_schema_extra=ADVERSARIAL,
                                     description="Warmup-stage steps (GAD, offpolicy SeqKD part). Default: one epoch "
                                     "over the training prompts.")
    steps: int | None = Field(None, ge=0, json_schema_extra=EVERY, description="Main-stage steps: adversarial steps "
                              "for gad/offpolicy, supervised steps for seqkd. Default: one epoch.")
    disc_only_steps: int = Field(10, ge=0, json_schema_extra=GAD, description="The first N warmup steps train only the "
                                 "discriminator (the generator is frozen).")
    offpolicy_disc_steps: int | None = Field(None, ge=0, json_schema_extra=OFFPOLICY,
                                             description="offpolicy: steps training the discriminator against the "
                                             "frozen student. Default: same as warmup steps.")
    generator_warmup: bool = Field(True, json_schema_extra=GAD, description="Ablation switch: fine-tune the generator "
                                   "on teacher text during warmup.")
    discriminator_warmup: bool = Field(True, json_schema_extra=GAD,
                                       description="Ablation switch: train the discriminator during warmup.")
    save_steps: int = Field(50, gt=0, json_schema_extra=OPERATIONAL_KIND,
                            description="Save a checkpoint every N global steps (and at the end of every stage).")
    sample_every: int = Field(10, gt=0, json_schema_extra=OPERATIONAL_KIND,
                              description="Write a sample record every N steps.")
    gradient_accumulation_steps: int = Field(1, gt=0, json_schema_extra=EVERY,
                                             description="Micro-batches per optimiser step. The discriminator steps "
                                             "once per micro-batch in warmup (once per policy step in the adversarial "
                                             "stage), so keep 1 to match the paper.")

    # --- the discriminator: schedule and held-out monitor ---------------------------------------
    disc_steps_per_step: int = Field(1, ge=1, le=64, json_schema_extra=ADVERSARIAL,
                                     description="Discriminator optimiser steps per policy step (the paper: 1). More "
                                     "lets D keep up with a policy that moves faster than it; each extra step costs "
                                     "one more forward/backward of D over the step's pairs.")
    disc_warmup_steps: int = Field(0, ge=0, json_schema_extra=GAD, description="gad: the first N adversarial steps "
                                   "train only the discriminator on the policy's rollouts (the policy is frozen), so D "
                                   "is warm before its reward moves the student. They count towards --steps.")
    disc_warmup_target: float | None = Field(None, gt=0.5, le=1.0, json_schema_extra=GAD,
                                             description="gad: end the disc_warmup_steps early once the held-out "
                                             "discriminator accuracy (the monitor, see disc_eval_every) reaches this "
                                             "value, e.g. 0.65. Needs a test split.")
    fork_discriminator: Literal["parent", "fresh"] = Field(
        "parent", json_schema_extra=ADVERSARIAL, description="A fork's discriminator: 'parent' takes the one saved in "
        "the parent's checkpoint (a fresh head on the original student when it holds none, e.g. a SeqKD parent); "
        "'fresh' builds a new head on the original student's backbone, as a new run starts. Checkpoints the run writes "
        "itself always keep their discriminator.")
    disc_eval_every: int = Field(25, ge=0, json_schema_extra=OPERATIONAL_KIND,
                                 description="Every N global steps, check the discriminator on held-out pairs: fresh "
                                 "student samples for test-split prompts against their held-out teacher responses "
                                 "(accuracy, identical share, score spread; see gad/training/monitor.py). 0: off. "
                                 "Needs held-out pairs: test_fraction > 0 or a held_out file.")
    held_out: str | None = Field(None, json_schema_extra=PLACE, description="Held-out prompt/teacher-response pairs (a "
                                 "data file) for the discriminator check, used when test_fraction is 0. The studio "
                                 "passes its dataset's test split here.")
    disc_eval_prompts: int = Field(32, gt=0, json_schema_extra=OPERATIONAL_KIND,
                                   description="Held-out prompts per discriminator check (the first N of the test "
                                   "split).")
    disc_eval_samples: int = Field(4, gt=0, json_schema_extra=OPERATIONAL_KIND,
                                   description="Student samples per held-out prompt in a discriminator check.")
    monitor_teacher: str | None = Field(None, json_schema_extra=OPERATIONAL_KIND,
                                        description="White-box diagnostic: a local copy of the teacher model (same "
                                        "tokenizer as the student). The monitor then also reports the rank correlation "
                                        "of D's score with log p_teacher - log p_student.")

    # --- optimisation ------------------------------------------------------------------------
    lr: float = Field(1e-6, gt=0, json_schema_extra=ADVERSARIAL,
                      description="Policy learning rate in the adversarial stage.")
    disc_lr: float = Field(1e-6, gt=0, json_schema_extra=ADVERSARIAL, description="Discriminator learning rate.")
    warmup_lr: float = Field(1e-6, gt=0, json_schema_extra=GAD, description="Generator learning rate in the warmup "
                             "stage (assumed equal to the adversarial lr, as in the reference runs).")
    seqkd_lr: float = Field(5e-6, gt=0, json_schema_extra=SUPERVISED_BASELINE,
                            description="Learning rate of the SeqKD baseline (and of the offpolicy method's SeqKD "
                            "stage).")
    weight_decay: float = Field(0.01, ge=0, json_schema_extra=EVERY, description="AdamW weight decay (both models).")
    grad_clip: float = Field(0.2, gt=0, json_schema_extra=EVERY, description="Gradient-norm clip for the policy.")
    disc_grad_clip: float = Field(0.2, gt=0, json_schema_extra=ADVERSARIAL,
                                  description="Gradient-norm clip for the discriminator.")
    kl_coef: float = Field(0.001, ge=0, json_schema_extra=ADVERSARIAL, description="KL-to-reference loss coefficient "
                           "(k3 estimator); the reference is the student at the start of the stage.")
    clip_range: float = Field(0.2, gt=0, json_schema_extra=ADVERSARIAL, description="PPO ratio clip epsilon.")
    temperature: float = Field(0.8, gt=0, json_schema_extra=ADVERSARIAL,
                               description="Sampling temperature for student responses.")
    top_p: float = Field(1.0, gt=0, le=1, json_schema_extra=ADVERSARIAL,
                         description="Nucleus sampling for student responses.")

    # --- models ------------------------------------------------------------------------------
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", json_schema_extra=EVERY, description="Precision. 'auto': float32 weights, with bfloat16 autocast on a "
        "GPU (pure bf16 weights lose AdamW updates at lr 1e-6). 'bfloat16': bf16 weights, half the memory, small "
        "updates may be lost. 'float32': no autocast.")
    lora: bool = Field(False, json_schema_extra=EVERY_FIXED,
                       description="Train LoRA adapters (peft) instead of all weights, for student and discriminator.")
    lora_r: int = Field(16, gt=0, json_schema_extra=EVERY_FIXED, description="LoRA rank.")
    lora_alpha: int = Field(32, gt=0, json_schema_extra=EVERY_FIXED, description="LoRA alpha.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, json_schema_extra=EVERY_FIXED, description="LoRA dropout.")
    trust_remote_code: bool = Field(False, json_schema_extra=OPERATIONAL_KIND,
                                    description="Allow model code from the hub. Off unless an admin turns it on: it "
                                    "runs arbitrary code.")
    gradient_checkpointing: bool = Field(False, json_schema_extra=OPERATIONAL_KIND,
                                         description="Recompute activations in the backward pass, for the student and "
                                         "the discriminator: slower steps (about a third), far less memory; what lets "
                                         "a 1.5B-7B run fit (see docs/deployment.md).")
    use_vllm: bool = Field(False, json_schema_extra=OPERATIONAL_KIND, description="Sample from the student with vLLM "
                           "(GPU, the optional extra): GRPO rollouts and the warmup's fresh samples for the "
                           "discriminator alike.")
    vllm_mode: Literal["colocate", "server"] = Field(
        "colocate", json_schema_extra=OPERATIONAL_KIND, description="vLLM beside training in each process "
        "('colocate'), or a separate `trl vllm-serve` server ('server', see vllm_server_url).")
    vllm_server_url: str | None = Field(None, json_schema_extra=OPERATIONAL_KIND,
                                        description="Base URL of the `trl vllm-serve` server in server mode, e.g. "
                                        "http://gpu-node-2:8000.")
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, lt=1, json_schema_extra=OPERATIONAL_KIND,
                                               description="Share of each GPU vLLM may take in colocate mode (vLLM's "
                                               "own default, 0.9, leaves nothing for training).")

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        problems = method_errors(self)
        if problems:
            # One message per problem, each starting with the field it is about (see _format_errors).
            raise ValueError("\n".join(f"{field}: {text}" for field, text in problems))
        return self

    # Derived ---------------------------------------------------------------------------------
    @property
    def output_dir(self) -> Path:
        return Path(self.output)


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid configuration ({source}):"]
    for e in err.errors():
        if e["type"] == "value_error" and not e["loc"]:
            # Our cross-field checks: the message already names its field, one problem a line.
            lines += [f"  - {line}" for line in str(e["ctx"]["error"]).splitlines()]
            continue
        field = ".".join(str(p) for p in e["loc"]) or "(config)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            close = [f for f in RunConfig.model_fields if _similar(f, field)]
            msg = "unknown field" + (f"; did you mean '{close[0]}'?" if close else "")
        elif e["type"] == "missing":
            msg = "required field is missing"
        got = e.get("input")
        got_text = "" if e["type"] in ("missing",) or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  - {field}: {msg}{got_text}")
    return "\n".join(lines)


def _similar(a: str, b: str) -> bool:
    a, b = a.lower().replace("-", "_"), b.lower().replace("-", "_")
    return a in b or b in a or len(set(a) ^ set(b)) <= 2


def build_config(values: dict[str, Any], source: str = "arguments") -> RunConfig:
    """Validate a dict of settings, turning pydantic's errors into one readable ConfigError."""
    try:
        return RunConfig(**values)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source), field=_first_field(err)) from None


def _first_field(err: ValidationError) -> str | None:
    first = err.errors()[0]
    if first["loc"]:
        return ".".join(str(p) for p in first["loc"])
    # a cross-field check: its message starts with the field (see RunConfig._check)
    return str(first.get("ctx", {}).get("error", "")).split(":", 1)[0] or None


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of field: value, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """YAML file (optional) with CLI overrides on top."""
    values = load_yaml(path) if path else {}
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return build_config(values, source=str(path) if path else "arguments")


# ----------------------------------------------------------------------------------------------
# Settings checked against the method
# ----------------------------------------------------------------------------------------------
def field_tag(name: str) -> dict:
    """The kind (and for training settings, the methods) tagged on a RunConfig field."""
    return RunConfig.model_fields[name].json_schema_extra or {}


def fields_of_kind(*kinds: str) -> frozenset[str]:
    return frozenset(n for n in RunConfig.model_fields if field_tag(n).get("kind") in kinds)


# How a run executes or what it writes, not what it learns: never compared on resume, never "ignored".
OPERATIONAL = fields_of_kind("operational", "place")
# Per-run files and models: never saved in a preset.
PER_RUN = fields_of_kind("input", "place")
# The checkpoint's weights belong to these; a fork cannot change them.
FIXED_BY_CHECKPOINT = frozenset(n for n in RunConfig.model_fields if field_tag(n).get("fixed_by_checkpoint"))
_LORA = frozenset({"lora_r", "lora_alpha", "lora_dropout"})
# seqkd draws a group of samples now and then so a user can watch the student; these settings
# shape that sample log and nothing the student learns.
_SAMPLE_LOG_ONLY = frozenset({"group_size", "temperature", "top_p"})


def method_fields(cfg: RunConfig) -> frozenset[str]:
    """The settings `cfg.method` trains with (given the other settings). Resume compares these only."""
    used = set(fields_of_kind("method", "input"))
    used |= {n for n in fields_of_kind("training") if cfg.method in field_tag(n)["methods"]}
    if not cfg.lora:
        used -= _LORA
    if cfg.method == "seqkd":
        used -= _SAMPLE_LOG_ONLY
    if cfg.method == "gad":
        if not cfg.disc_warmup_steps:
            used.discard("disc_warmup_target")
        if cfg.warmup_steps == 0:  # None means one epoch of warmup
            used -= {"generator_warmup", "discriminator_warmup", "warmup_lr", "disc_only_steps"}
        elif not cfg.generator_warmup:
            used -= {"warmup_lr", "disc_only_steps"}
        elif not cfg.discriminator_warmup:
            used.discard("disc_only_steps")
    return frozenset(used)


def method_warnings(cfg: RunConfig) -> list[str]:
    """One line per setting the method ignores although it was changed from its default.

    Pure: the CLI prints these, the REST API returns them and the UI shows them next to the form.
    """
    used = method_fields(cfg)
    out = []
    for name, field in RunConfig.model_fields.items():
        if name in used or name in OPERATIONAL:
            continue
        value = getattr(cfg, name)
        if value == field.default:
            continue
        why = ("only sets the samples shown in the sample log" if cfg.method == "seqkd" and name in _SAMPLE_LOG_ONLY
               else _ignored_reason(cfg, name))
        out.append(f"{name}={value!r} is ignored: {why}")
    return out


def _ignored_reason(cfg: RunConfig, name: str) -> str:
    if name in _LORA:
        return "lora is off"
    if cfg.method == "gad" and cfg.warmup_steps == 0 and name in {"generator_warmup", "discriminator_warmup",
                                                                  "warmup_lr", "disc_only_steps"}:
        return "warmup_steps is 0, so there is no warmup stage"
    if name == "warmup_lr" and cfg.method == "gad":
        return "generator_warmup is off"
    if name == "disc_warmup_target":
        return ("disc_warmup_steps is 0" if cfg.method == "gad"
                else "only gad has a discriminator warmup in its adversarial stage")
    if name == "disc_only_steps" and cfg.method == "gad":
        return "the warmup does not train both models (generator_warmup or discriminator_warmup is off)"
    return f"method {cfg.method!r} does not use it"


def planned_steps(cfg: RunConfig, n_train: int) -> dict[str, int]:
    """Steps per stage, before dropping empty stages: the same arithmetic as pipeline.plan_stages."""
    epoch = max(1, math.ceil(n_train / cfg.batch_size))
    warm = epoch if cfg.warmup_steps is None else cfg.warmup_steps
    main = epoch if cfg.steps is None else cfg.steps
    if cfg.method == "seqkd":
        return {"seqkd": main}
    if cfg.method == "offpolicy":
        return {"seqkd": warm, "disc": warm if cfg.offpolicy_disc_steps is None else cfg.offpolicy_disc_steps,
                "adversarial": main}
    return {"warmup": warm, "adversarial": main}


def method_errors(cfg: RunConfig, n_train: int | None = None) -> list[tuple[str, str]]:
    """(field, problem) for combinations of settings that cannot work.

    Without `n_train`, only what the settings decide alone is checked (a step count left unset
    means one epoch, at least one step); `check_plan` repeats this once the data is known.
    """
    problems = []
    if cfg.method == "gad" and not (cfg.generator_warmup or cfg.discriminator_warmup) and (cfg.warmup_steps or 0) > 0:
        problems.append(("warmup_steps", "generator_warmup and discriminator_warmup are both off, so the warmup "
                                         "stage would do nothing: set warmup_steps to 0 instead"))
    # An unset step count is one epoch: at least 1 step whatever the data.
    steps = planned_steps(cfg, n_train if n_train is not None else 1)
    if sum(steps.values()) == 0:
        zero = [f for f in ("warmup_steps", "offpolicy_disc_steps", "steps")
                if f in method_fields(cfg) and getattr(cfg, f) == 0]
        verb = "leaves" if len(zero) == 1 else "leave"
        problems.append(("steps", f"{' and '.join(f'{f} 0' for f in zero)} {verb} method {cfg.method!r} nothing "
                                  f"to train; give steps at least 1 (or leave it unset for one epoch)"))
    warm = steps.get("warmup", 0)
    if cfg.method == "gad" and cfg.generator_warmup and cfg.discriminator_warmup and 0 < warm <= cfg.disc_only_steps \
            and (cfg.warmup_steps is not None or n_train is not None):
        source = f"warmup_steps {warm}" if cfg.warmup_steps is not None else \
            f"the warmup of one epoch ({warm} steps of {cfg.batch_size} prompts)"
        problems.append(("disc_only_steps", f"{cfg.disc_only_steps} discriminator-only steps leave no step of "
                                            f"{source} to the generator, so its warmup would be skipped; lower "
                                            f"disc_only_steps below {warm}, lengthen the warmup, or set "
                                            f"generator_warmup to false if that is the ablation you want"))
    main = steps.get("adversarial", 0)
    if cfg.method == "gad" and cfg.disc_warmup_steps and main and cfg.disc_warmup_steps >= main \
            and (cfg.steps is not None or n_train is not None):
        problems.append(("disc_warmup_steps", f"{cfg.disc_warmup_steps} discriminator-only steps leave none of the "
                                              f"{main} adversarial steps to the policy; lower disc_warmup_steps "
                                              f"below {main} or raise steps"))
    if cfg.use_vllm and cfg.vllm_mode == "server" and not cfg.vllm_server_url:
        problems.append(("vllm_server_url", "vllm_mode 'server' needs the URL of the `trl vllm-serve` server"))
    return problems


def check_plan(cfg: RunConfig, n_train: int) -> None:
    """Raise ConfigError when the settings cannot work with `n_train` training prompts."""
    problems = method_errors(cfg, n_train)
    if problems:
        raise ConfigError("invalid configuration for this data:\n" +
                          "\n".join(f"  - {field}: {text}" for field, text in problems), field=problems[0][0])
