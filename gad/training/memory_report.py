"""Where the memory estimate is shown: the dashboard's new-run form (`estimate_run`, from a RunConfig)
and the deployment guide's table (`table_markdown`; scripts/memory_table.py prints it, a test keeps
docs/deployment.md current). Both call gad.training.memory.estimate; this module only chooses the
workloads they ask about."""

from __future__ import annotations

import math
from typing import Literal

from gad.training.memory import VLLM_SHARE, MemoryEstimate, Strategy, VllmMode, disc_chunk, estimate
from gad.training.model_sizes import PRESETS, Arch

# Sequences per generate call of the supervised stages' sample log (gad/llm/generation.py max_batch).
SAMPLE_BATCH = 64


def estimate_run(cfg, arch: Arch, *, n_gpus: int = 1, gpu_gb: float = 80.0, strategy: Strategy = "ddp",
                 vllm: VllmMode | None | Literal["auto"] = "auto", prompt_tokens: int | None = None,
                 gradient_checkpointing: bool | None = None) -> MemoryEstimate:
    """`estimate` for a RunConfig (the dashboard's new-run form): the largest stage of its method.

    vllm 'auto' follows cfg.use_vllm and cfg.vllm_mode; the colocated share is
    cfg.vllm_gpu_memory_utilization. prompt_tokens defaults to cfg.max_prompt_length, the worst case a
    batch can pad to.
    """
    if vllm == "auto":
        vllm = cfg.vllm_mode if cfg.use_vllm else None
    if gradient_checkpointing is None:
        gradient_checkpointing = cfg.gradient_checkpointing
    world = n_gpus * cfg.gradient_accumulation_steps
    common = dict(n_gpus=n_gpus, gpu_gb=gpu_gb, strategy=strategy, lora=cfg.lora, lora_r=cfg.lora_r, dtype=cfg.dtype,
                  vllm_share=cfg.vllm_gpu_memory_utilization,
                  prompt_tokens=prompt_tokens or cfg.max_prompt_length, response_tokens=cfg.max_new_tokens,
                  group_size=cfg.group_size, gradient_checkpointing=gradient_checkpointing)
    if cfg.method == "seqkd":
        # supervised steps on teacher text; the sample log's occasional generate is small
        return estimate(arch, **common, kl=False, discriminator=False, vllm=None,
                        micro_batch=math.ceil(cfg.batch_size / world),
                        gen_sequences=min(SAMPLE_BATCH, cfg.group_size * math.ceil(cfg.batch_size / n_gpus)))
    return estimate(arch, **common, kl=cfg.kl_coef > 0, discriminator=True,
                    disc_trainable=cfg.method == "gad", vllm=vllm,
                    micro_batch=math.ceil(cfg.batch_size * cfg.group_size / world),
                    gen_sequences=math.ceil(cfg.batch_size * cfg.group_size / n_gpus))


# ----------------------------------------------------------------------------------------------
# The deployment guide's table (scripts/memory_table.py prints it; a test keeps docs/deployment.md current)
# ----------------------------------------------------------------------------------------------
TABLE_SIZES = ("Qwen2.5-0.5B", "Qwen2.5-1.5B", "Qwen2.5-3B", "Qwen2.5-7B", "Qwen2.5-14B")
TABLE_COLUMNS: tuple[tuple[str, int, str], ...] = (
    ("1×80 GB", 1, "ddp"), ("8×80 GB DDP", 8, "ddp"), ("8×80 GB ZeRO-2", 8, "zero2"),
    ("8×80 GB ZeRO-3", 8, "zero3"), ("8×80 GB FSDP", 8, "fsdp"))
# The paper's lengths with a typical prompt (the 2048-token prompt limit is the worst case); one
# prompt's group per policy micro-batch, the smallest gad/training/pipeline.py allows (it gives TRL
# per-device prompts x group_size sequences); vLLM colocated at TRL's default share.
TABLE_WORKLOAD = dict(prompt_tokens=512, response_tokens=1536, group_size=8, micro_batch=8, vllm="colocate",
                      vllm_share=VLLM_SHARE, kl=True, lora_r=16)
# Rows per size: (label, settings).
TABLE_MODES: tuple[tuple[str, dict], ...] = (
    ("full", {"lora": False, "dtype": "auto"}), ("LoRA", {"lora": True, "dtype": "auto"}),
    ("LoRA, bf16 base", {"lora": True, "dtype": "bfloat16"}))
# The breakdown printed under the tables: a configuration that fits a 7B student on one 8-GPU node.
TABLE_EXAMPLE = dict(name="Qwen2.5-7B", n_gpus=8, strategy="zero3", lora=True, dtype="bfloat16",
                     gradient_checkpointing=True)


def _cell(e: MemoryEstimate) -> str:
    return f"{e.total_gb:.1f} {'✓' if e.fits else '✗'}"


def table_markdown(gpu_gb: float = 80.0) -> str:
    """Markdown: per-GPU peak GB for TABLE_SIZES x {full, LoRA} x TABLE_COLUMNS, with gradient
    checkpointing off (as the pipeline runs today) and on, then one itemised estimate."""
    w = TABLE_WORKLOAD
    chunk = disc_chunk(w["group_size"])
    out = [f"Per-GPU peak memory in GB (1 GB = 1e9 bytes) of GAD's adversarial stage, from "
           f"`gad.training.memory.estimate`; ✓ fits in {gpu_gb:g} GB, ✗ does not. Workload: prompt "
           f"{w['prompt_tokens']} + response {w['response_tokens']} tokens, group size {w['group_size']}, "
           f"{w['micro_batch']} sequences per policy micro-batch (one prompt's group: gradient_accumulation_steps "
           f"= batch_size / GPUs), discriminator chunks of {chunk} sequences (gad/training/discriminator.py), KL "
           f"reference on, LoRA rank {w['lora_r']} on all linear layers, vLLM colocated with {w['vllm_share']:g} of "
           f"each GPU. Rows: full fine-tuning and LoRA with dtype auto (fp32 master weights, bf16 autocast); LoRA "
           f"over bf16 frozen bases (dtype bfloat16; peft keeps the adapters in fp32). The discriminator is whole "
           f"on every GPU under every strategy (gad/training/discriminator.py does not shard it).", ""]
    for checkpointing, title in ((False, "Gradient checkpointing off (what gad/training/pipeline.py runs today)"),
                                 (True, "Gradient checkpointing on, policy and discriminator")):
        out += [f"**{title}**", "",
                "| student | params | training | " + " | ".join(c[0] for c in TABLE_COLUMNS) + " |",
                "|---|---:|---|" + "---:|" * len(TABLE_COLUMNS)]
        for name in TABLE_SIZES:
            arch = PRESETS[name]
            for label, mode in TABLE_MODES:
                cells = [_cell(estimate(arch, n_gpus=n, gpu_gb=gpu_gb, strategy=s, gradient_checkpointing=checkpointing,
                                        advise=False, **mode, **w))
                         for _, n, s in TABLE_COLUMNS]
                out.append(f"| {name} | {arch.params / 1e9:.2f}B | {label} | " + " | ".join(cells) + " |")
        out.append("")
    ex = dict(TABLE_EXAMPLE)
    arch = PRESETS[ex.pop("name")]
    e = estimate(arch, gpu_gb=gpu_gb, **ex, **w)
    out += [f"Itemised, with the workload above: `estimate(PRESETS[\"{arch.name}\"], "
            + ", ".join(f"{k}={v!r}" for k, v in TABLE_EXAMPLE.items() if k != "name") + ")`", "",
            "```", e.summary(), "```"]
    return "\n".join(out) + "\n"
