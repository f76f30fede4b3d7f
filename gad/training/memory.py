"""GPU memory arithmetic for a GAD run: what each GPU holds, whether it fits, and what to change if not.

One pure function, `estimate`, is the single source of these numbers: the deployment guide's table
and the dashboard's new-run estimate (both in gad.training.memory_report) call it. The model's sizes,
parameter counts and activation bytes per token come from gad.training.model_sizes.

What is counted, per GPU, for the stage that holds the most (GAD's adversarial stage: the policy,
TRL's frozen reference policy for the KL term, and the discriminator, which is as large as the
student), as the code runs today:

- the policy's weights, gradients and AdamW states, sharded as the strategy says
  (ddp: nothing; zero2: gradients and optimizer states; zero3 and fsdp: everything);
- the reference policy (kl_coef > 0 and no LoRA: TRL loads a frozen copy; with LoRA it disables the
  adapter instead), sharded by zero3/fsdp like the policy;
- the discriminator with its own AdamW. gad/training/discriminator.py keeps it whole on every GPU (it is not
  handed to DeepSpeed/FSDP; its gradients are all-reduced by hand), so no strategy shards it:
  `discriminator_sharded=True` models the day it is;
- activations of one forward/backward (policy micro-batch; discriminator chunk), the policy's
  logits, and the bf16 copies of fp32 weights that autocast keeps for the backward pass;
- rollouts: vLLM's share of the GPU when colocated (TRL's vllm_gpu_memory_utilization), or the
  KV cache of transformers' generate;
- a fixed allowance for the CUDA context, NCCL buffers and allocator slack.

Weights, optimizer states and the vLLM share stay resident all step long. Gradients and
activations live in phases that do not overlap (generate, then the discriminator's step, then the
policy's step; each frees its gradients), so the peak is the resident part plus the largest phase.

Bytes per parameter (precision = RunConfig.dtype):
- 'auto' (the default): fp32 master weights with bf16 autocast. DDP/FSDP: 4 (weights) + 4
  (gradients) + 8 (AdamW's two fp32 moments) = 16. DeepSpeed converts the model to bf16 and keeps
  fp32 master weights in the optimizer: 2 + 2 + 12 = 16 (ZeRO paper, Rajbhandari et al. 2020, §3).
  Multi-process DDP also keeps gradient buckets beside the gradients (accelerate's
  DistributedDataParallelKwargs leaves gradient_as_bucket_view off): 4 more.
- 'bfloat16'/'float16': 2 + 2 + 4 (torch's AdamW keeps its moments in the weights' dtype);
  DeepSpeed 2 + 2 + 12. 'float32': 4 + 4 + 8 everywhere, no autocast.

Activations: bytes per token per decoder layer as gad.training.model_sizes fits them (measured on
Qwen2 layers). With gradient checkpointing each layer keeps only its fp32 input (4*h) and one layer is
recomputed at a time. Autocast also saves a bf16 copy of every fp32 weight used in the forward
(2 bytes/param) unless checkpointing recomputes it. Policy logits cost 4 bytes per logit (the bf16
logits TRL's log-softmax saves, and their gradient) over the response tokens.

All figures are decimal gigabytes (1 GB = 1e9 bytes; an "80 GB" H100 holds about 85.9e9 bytes, so
the verdicts err on the safe side). They are estimates to plan with, not guarantees: allocator
fragmentation, kernels' workspaces and framework buffers move real peaks by several GB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

from gad.training.model_sizes import Arch, activation_bytes_per_token_layer

GB = 1e9
Strategy = Literal["ddp", "zero2", "zero3", "fsdp"]
STRATEGIES: tuple[str, ...] = ("ddp", "zero2", "zero3", "fsdp")
STRATEGY_NAMES = {"ddp": "DDP", "zero2": "ZeRO-2", "zero3": "ZeRO-3", "fsdp": "FSDP"}
VllmMode = Literal["colocate", "server"]

# Sequences per discriminator forward/backward: gad/training/discriminator.py's Discriminator(micro_batch=16),
# which the pipeline does not override. It collects whole groups (teacher + group_size students)
# until a chunk holds at least this many sequences. tests/test_memory.py checks it matches.
DISC_MICRO_BATCH = 16
# CUDA context (~0.5 GB), NCCL buffers and allocator slack: a rule of thumb, not a measurement.
OVERHEAD_GB = 2.0
# TRL's default vllm_gpu_memory_utilization for colocated rollouts (GRPOConfig, trl 1.16).
VLLM_SHARE = 0.3


@dataclass(frozen=True)
class Item:
    """One thing a GPU holds: its size and how it was counted."""
    name: str
    gb: float
    note: str = ""


@dataclass(frozen=True)
class MemoryEstimate:
    """Per-GPU memory: resident items, plus the phase that peaks (its items listed in `peak`)."""
    arch: Arch
    strategy: str
    n_gpus: int
    gpu_gb: float
    resident: tuple[Item, ...]
    phases: dict[str, tuple[Item, ...]]
    problems: tuple[str, ...] = ()        # reasons it cannot run beyond the total (e.g. vLLM's share too small)
    advice: tuple[str, ...] = field(default=())

    @property
    def resident_gb(self) -> float:
        return sum(i.gb for i in self.resident)

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=lambda p: sum(i.gb for i in self.phases[p]))

    @property
    def peak(self) -> tuple[Item, ...]:
        return self.phases[self.peak_phase]

    @property
    def total_gb(self) -> float:
        return self.resident_gb + sum(i.gb for i in self.peak)

    @property
    def fits(self) -> bool:
        return self.total_gb <= self.gpu_gb and not self.problems

    def items(self) -> tuple[Item, ...]:
        """Everything counted in the total: resident items, then the peak phase's."""
        return self.resident + self.peak

    def summary(self) -> str:
        lines = [f"{self.arch.name}, {STRATEGY_NAMES[self.strategy]} on {self.n_gpus} x {self.gpu_gb:g} GB: "
                 f"{self.total_gb:.1f} GB per GPU at peak ({self.peak_phase}) -> "
                 f"{'fits' if self.fits else 'does not fit'}"]
        lines += [f"  {i.name:<34s}{i.gb:8.1f} GB  {i.note}".rstrip() for i in self.items() if i.gb > 0]
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  to fit: {a}" for a in self.advice]
        return "\n".join(lines)


def _precision(strategy: str, dtype: str) -> tuple[int, int, int]:
    """Bytes per trained parameter: (weights, gradients, optimizer states) of the policy."""
    if dtype == "float32":
        return 4, 4, 8
    if strategy in ("zero2", "zero3"):  # DeepSpeed mixed precision: bf16 model, fp32 master in the optimizer
        return 2, 2, 12
    if dtype in ("bfloat16", "float16"):
        return 2, 2, 4
    return 4, 4, 8  # 'auto': fp32 master weights, bf16 autocast


def _activations(arch: Arch, tokens: int, dtype: str, checkpointing: bool) -> float:
    per_layer = activation_bytes_per_token_layer(arch, dtype)
    if checkpointing:
        # each layer's fp32 input is kept; one layer at a time is recomputed with its full activations
        return tokens * (arch.num_layers * 4 * arch.hidden_size + per_layer)
    return tokens * arch.num_layers * per_layer


def disc_chunk(group_size: int, micro_batch: int = DISC_MICRO_BATCH) -> int:
    """Sequences in one discriminator forward: whole groups (teacher + students) until >= micro_batch."""
    return math.ceil(micro_batch / (group_size + 1)) * (group_size + 1)


def estimate(arch: Arch, *, n_gpus: int = 1, gpu_gb: float = 80.0, strategy: Strategy = "ddp",
             lora: bool = False, lora_r: int = 16, dtype: str = "auto", kl: bool = True,
             discriminator: bool = True, disc_trainable: bool = True, discriminator_sharded: bool = False,
             vllm: VllmMode | None = "colocate", vllm_share: float = VLLM_SHARE,
             prompt_tokens: int = 512, response_tokens: int = 1536, micro_batch: int | None = None,
             group_size: int = 8, disc_micro_batch: int = DISC_MICRO_BATCH, gen_sequences: int = 256,
             gradient_checkpointing: bool = False, advise: bool = True) -> MemoryEstimate:
    """Per-GPU memory of a GAD run's adversarial stage (the largest), and whether it fits.

    arch: the student's sizes (PRESETS, arch_from_config, arch_from_folder).
    n_gpus: processes over all machines (one per GPU); sharding divides by it.
    gpu_gb: memory of one GPU, decimal GB.
    strategy: 'ddp' | 'zero2' | 'zero3' | 'fsdp' (configs/accelerate/<strategy>.yaml).
    lora, lora_r: LoRA adapters (all linear layers) for student and discriminator instead of all weights.
    dtype: RunConfig.dtype ('auto' = fp32 master weights + bf16 autocast).
    kl: a KL term (kl_coef > 0): without LoRA, TRL holds a frozen reference copy of the policy.
    discriminator, disc_trainable: the stage holds a discriminator / trains it (offpolicy's last stage
        holds a frozen one).
    discriminator_sharded: shard the discriminator like the policy under zero3/fsdp (not what
        gad/training/discriminator.py does today; for planning that change).
    vllm: 'colocate' (vLLM inside each training process, `vllm_share` of every GPU), 'server' (vLLM on
        GPUs of its own: nothing here) or None (transformers' generate: a KV cache per rollout batch).
    prompt_tokens, response_tokens: sequence length = prompt + response (padding reaches the longest).
    micro_batch: sequences per policy forward/backward on one GPU
        (= batch_size * group_size / (GPUs * gradient_accumulation_steps)); default group_size, the
        smallest the pipeline gives TRL (one prompt's group).
    group_size: responses per prompt; with disc_micro_batch it sets the discriminator's chunk
        (see disc_chunk; Discriminator's micro_batch is not a setting yet).
    gen_sequences: sequences one GPU generates per step without vLLM (= batch_size * group_size / GPUs).
    gradient_checkpointing: recompute activations in the backward pass (policy and discriminator).
    advise: fill `advice` with single changes (then combinations) that make a misfit fit.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    micro_batch = group_size if micro_batch is None else micro_batch
    if n_gpus < 1 or micro_batch < 1 or gen_sequences < 1 or disc_micro_batch < 1:
        raise ValueError("n_gpus, micro_batch, disc_micro_batch and gen_sequences must be at least 1")
    w, g, o = _precision(strategy, dtype)
    deepspeed = strategy in ("zero2", "zero3")
    full_shard = strategy in ("zero3", "fsdp")
    shard_w = n_gpus if full_shard else 1
    shard_go = n_gpus if strategy != "ddp" else 1
    seq = prompt_tokens + response_tokens
    # fp32 weights under bf16 autocast leave bf16 copies for the backward; DeepSpeed holds bf16 weights,
    # FSDP's mixed-precision policy gathers them in bf16 already.
    autocast_copies = dtype == "auto" and not deepspeed and strategy != "fsdp"

    P = arch.params
    trained = arch.lora_params(lora_r) if lora else P
    if lora and not deepspeed:
        g, o = 4, 8  # peft keeps adapters in fp32 whatever the base's dtype (autocast_adapter_dtype)
    resident = [Item("policy weights", w * P / shard_w / GB,
                     f"{P / 1e9:.2f}B params x {w} B" + (f" / {shard_w}" if shard_w > 1 else "")
                     + (" (frozen base)" if lora else ""))]
    if lora:
        resident.append(Item("policy LoRA adapters", (2 if deepspeed else 4) * trained / GB,
                             f"{trained / 1e6:.0f}M params x {2 if deepspeed else 4} B"))
    resident.append(Item("policy AdamW states", o * trained / shard_go / GB,
                         f"{o} B/param" + (f" / {shard_go}" if shard_go > 1 else "")))
    resident.append(Item("policy gradients", g * trained / shard_go / GB,
                         f"{g} B/param" + (f" / {shard_go}" if shard_go > 1 else "")))
    if strategy == "ddp" and n_gpus > 1:
        resident.append(Item("DDP gradient buckets", g * trained / GB, "gradient_as_bucket_view is off"))
    if full_shard:
        resident.append(Item("gathered layers", 2 * 2 * arch.layer_params / GB,
                             "current + prefetched layer, bf16"))
    if kl and not lora:
        ref_w = 4 if dtype == "float32" else (2 if deepspeed or dtype in ("bfloat16", "float16") else 4)
        resident.append(Item("reference policy (KL)", ref_w * P / shard_w / GB,
                             f"frozen copy, {ref_w} B/param" + (f" / {shard_w}" if shard_w > 1 else "")))

    phases: dict[str, list[Item]] = {}
    if discriminator:
        wd = 2 if dtype in ("bfloat16", "float16") else 4
        shard_d = n_gpus if discriminator_sharded and full_shard else 1
        Dp = arch.disc_params
        d_trained = (arch.lora_params(lora_r) + arch.hidden_size) if lora else Dp
        resident.append(Item("discriminator weights", wd * Dp / shard_d / GB,
                             f"{Dp / 1e9:.2f}B params x {wd} B" + (f" / {shard_d}" if shard_d > 1 else "")
                             + (" (frozen base)" if lora else ", not sharded" if shard_d == 1 else "")))
        # its own torch AdamW: moments in the trained weights' dtype (LoRA adapters: fp32)
        gd = 4 if lora else wd
        if lora:
            resident.append(Item("discriminator LoRA adapters", 4 * d_trained / GB,
                                 f"{d_trained / 1e6:.0f}M params x 4 B"))
        if disc_trainable:
            resident.append(Item("discriminator AdamW states", 2 * gd * d_trained / shard_d / GB,
                                 f"{2 * gd} B/param" + (", LoRA" if lora else "")))
            chunk = disc_chunk(group_size, disc_micro_batch)
            d_items = [Item("discriminator gradients", gd * d_trained / shard_d / GB, f"{gd} B/param"),
                       Item("discriminator activations",
                            _activations(arch, chunk * seq, dtype, gradient_checkpointing) / GB,
                            f"{chunk} sequences x {seq} tokens")]
            if dtype == "auto" and not gradient_checkpointing:
                d_items.append(Item("discriminator bf16 weight copies", 2 * Dp / shard_d / GB,
                                    "autocast, kept for backward"))
            phases["discriminator step"] = d_items

    p_items = [Item("policy activations", _activations(arch, micro_batch * seq, dtype, gradient_checkpointing) / GB,
                    f"{micro_batch} sequences x {seq} tokens"),
               Item("policy logits", 4 * micro_batch * response_tokens * arch.vocab_size / GB,
                    f"{micro_batch} x {response_tokens} x {arch.vocab_size} x 4 B")]
    if autocast_copies and not gradient_checkpointing:
        p_items.append(Item("policy bf16 weight copies", 2 * P / GB, "autocast, kept for backward"))
    phases["policy step"] = p_items

    kv_per_token = 2 * arch.num_layers * arch.kv_dim * 2  # K and V, bf16
    problems = []
    if vllm == "colocate":
        share = vllm_share * gpu_gb
        vllm_weights = 2 * P / GB
        resident.append(Item("vLLM (colocated)", share,
                             f"gpu_memory_utilization {vllm_share:g}: bf16 weights {vllm_weights:.1f} GB + KV cache"))
        if share < vllm_weights + kv_per_token * seq / GB:
            problems.append(f"vLLM's share ({share:.1f} GB) cannot hold the student's bf16 weights "
                            f"({vllm_weights:.1f} GB) and one sequence's KV cache: raise vllm_share, "
                            f"or run vLLM as a server on GPUs of its own")
    elif vllm is None:
        gen = [Item("generation KV cache", kv_per_token * gen_sequences * seq / GB,
                    f"{gen_sequences} sequences x {seq} tokens, transformers generate")]
        if full_shard:
            gen.append(Item("gathered weights for generate", (2 if deepspeed else w) * P / GB,
                            "TRL unshards the policy to generate"))
        elif autocast_copies:
            gen.append(Item("policy bf16 weight copies", 2 * P / GB, "autocast cache"))
        phases["generation"] = gen
    elif vllm != "server":
        raise ValueError(f"vllm must be 'colocate', 'server' or None, got {vllm!r}")
    resident.append(Item("CUDA context, NCCL, allocator", OVERHEAD_GB, "rule of thumb"))

    est = MemoryEstimate(arch, strategy, n_gpus, gpu_gb, tuple(resident),
                         {k: tuple(v) for k, v in phases.items()}, tuple(problems))
    if advise and not est.fits:
        kwargs = dict(n_gpus=n_gpus, gpu_gb=gpu_gb, strategy=strategy, lora=lora, lora_r=lora_r, dtype=dtype, kl=kl,
                      discriminator=discriminator, disc_trainable=disc_trainable,
                      discriminator_sharded=discriminator_sharded, vllm=vllm, vllm_share=vllm_share,
                      prompt_tokens=prompt_tokens, response_tokens=response_tokens, micro_batch=micro_batch,
                      group_size=group_size, disc_micro_batch=disc_micro_batch, gen_sequences=gen_sequences,
                      gradient_checkpointing=gradient_checkpointing)
        est = replace(est, advice=tuple(_advice(arch, kwargs)))
    return est


# Single changes worth trying, in the order a user would reach for them: (label, settings).
def _changes(kw: dict) -> list[tuple[str, dict]]:
    out = []
    if not kw["lora"]:
        out.append(("LoRA for student and discriminator (lora: true)", {"lora": True}))
    if kw["n_gpus"] > 1 and kw["strategy"] not in ("zero3", "fsdp"):
        out.append(("ZeRO-3 or FSDP sharding (configs/accelerate/zero3.yaml)", {"strategy": "zero3"}))
    if not kw["gradient_checkpointing"]:
        out.append(("gradient checkpointing for policy and discriminator", {"gradient_checkpointing": True}))
    if kw["micro_batch"] > kw["group_size"]:
        # the pipeline's smallest policy micro-batch is one prompt's whole group
        out.append(("one prompt per policy micro-batch (gradient_accumulation_steps = batch_size / GPUs)",
                    {"micro_batch": kw["group_size"]}))
    if kw["dtype"] == "auto":
        # bf16 weights lose AdamW updates at lr 1e-6, but a frozen LoRA base is never updated
        out.append(("LoRA over bf16 frozen bases (lora: true, dtype: bfloat16; peft keeps adapters fp32)",
                    {"lora": True, "dtype": "bfloat16"}))
    if kw["discriminator"] and kw["disc_trainable"] and disc_chunk(kw["group_size"], kw["disc_micro_batch"]) > \
            kw["group_size"] + 1:
        out.append(("one group per discriminator forward (Discriminator micro_batch; not a setting yet)",
                    {"disc_micro_batch": 1}))
    if kw["vllm"] == "colocate":
        out.append(("vLLM as a separate server (vllm_mode server) instead of colocated", {"vllm": "server"}))
    if kw["vllm"] is None:
        out.append(("vLLM rollouts (use_vllm) instead of transformers' generate", {"vllm": "colocate"}))
    if not kw["discriminator_sharded"] and kw["discriminator"]:
        out.append(("a sharded discriminator (not implemented: gad/training/discriminator.py keeps it whole)",
                    {"discriminator_sharded": True, "strategy": "zero3" if kw["strategy"] not in ("zero3", "fsdp")
                     else kw["strategy"]}))
    return out


def _advice(arch: Arch, kw: dict) -> list[str]:
    """Single changes that make it fit; failing that, the smallest combination found in order; and
    how many GPUs would do with everything else as asked (ZeRO-3)."""
    changes = _changes(kw)
    out = [f"{label} -> {e.total_gb:.0f} GB" for label, ch in changes
           if (e := estimate(arch, **{**kw, **ch}, advise=False)).fits]
    if not out:
        combined, labels = dict(kw), []
        for label, ch in changes:
            combined.update(ch)
            labels.append(label)
            e = estimate(arch, **combined, advise=False)
            if e.fits:
                out.append("together: " + "; ".join(labels) + f" -> {e.total_gb:.0f} GB")
                break
    for n in (2, 4, 8, 16, 32, 64):
        if n <= kw["n_gpus"]:
            continue
        # the step's rollouts spread over more GPUs
        e = estimate(arch, **{**kw, "n_gpus": n, "strategy": "zero3",
                              "gen_sequences": max(1, kw["gen_sequences"] * kw["n_gpus"] // n)}, advise=False)
        if e.fits:
            out.append(f"{n} GPUs with ZeRO-3 -> {e.total_gb:.0f} GB")
            break
    if not out:
        out.append("no single change, combination or GPU count up to 64 found; shorten responses or prompts")
    return out
