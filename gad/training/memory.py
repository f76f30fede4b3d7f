"""GPU memory arithmetic for a GAD run: what each GPU holds, whether it fits, and what to change if not.

One pure function, `estimate`, is the single source of these numbers: the deployment guide's table
(scripts/memory_table.py prints it, tests/test_memory.py checks the committed copy is current) and
the dashboard's new-run estimate (`estimate_run`, from a RunConfig) both call it.

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

Activations, bytes per token per decoder layer (Qwen2/Llama layout: RMSNorm, attention through
SDPA/flash so no seq^2 term, SwiGLU MLP), fitted to the tensors autograd saves, measured with
torch.autograd.graph.saved_tensors_hooks on Qwen2 layers (transformers 5.20, torch 2.13):
    bf16 autocast over fp32 weights: 30*h + 8*intermediate + 4*kv_dim   (+ tests re-measure it)
    float32:                         32*h + 16*intermediate + 8*kv_dim
(pure bf16 weights save about 15% less; the autocast figure is used for them too, erring high).
With gradient checkpointing each layer keeps only its fp32 input (4*h) and one layer is
recomputed at a time. Autocast also saves a bf16 copy of every fp32 weight used in the forward
(2 bytes/param) unless checkpointing recomputes it. Policy logits cost 4 bytes per logit (the bf16
logits TRL's log-softmax saves, and their gradient) over the response tokens.

All figures are decimal gigabytes (1 GB = 1e9 bytes; an "80 GB" H100 holds about 85.9e9 bytes, so
the verdicts err on the safe side). They are estimates to plan with, not guarantees: allocator
fragmentation, kernels' workspaces and framework buffers move real peaks by several GB.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

GB = 1e9
Strategy = Literal["ddp", "zero2", "zero3", "fsdp"]
STRATEGIES: tuple[str, ...] = ("ddp", "zero2", "zero3", "fsdp")
STRATEGY_NAMES = {"ddp": "DDP", "zero2": "ZeRO-2", "zero3": "ZeRO-3", "fsdp": "FSDP"}
VllmMode = Literal["colocate", "server"]

# Sequences per discriminator forward/backward: gad/training/discriminator.py's Discriminator(micro_batch=16),
# which the pipeline does not override. It collects whole groups (teacher + group_size students)
# until a chunk holds at least this many sequences. tests/test_memory.py checks it matches.
DISC_MICRO_BATCH = 16
# Sequences per generate call of the supervised stages' sample log (gad/llm/generation.py max_batch).
SAMPLE_BATCH = 64
# CUDA context (~0.5 GB), NCCL buffers and allocator slack: a rule of thumb, not a measurement.
OVERHEAD_GB = 2.0
# TRL's default vllm_gpu_memory_utilization for colocated rollouts (GRPOConfig, trl 1.16).
VLLM_SHARE = 0.3


# ----------------------------------------------------------------------------------------------
# Architectures
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arch:
    """The sizes of a decoder-only transformer that memory depends on (Qwen2/Llama layout)."""
    name: str
    hidden_size: int
    num_layers: int
    vocab_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    tie_embeddings: bool
    attention_bias: bool = True  # Qwen2: biases on q, k, v; Llama: none
    head_dim: int | None = None  # None: hidden_size // num_heads (filled in, so equal models compare equal)

    def __post_init__(self):
        if self.head_dim is None:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    def _linears(self) -> list[tuple[int, int]]:
        """(in, out) of each linear layer of one decoder layer: q, k, v, o, gate, up, down."""
        h, i = self.hidden_size, self.intermediate_size
        return [(h, self.q_dim), (h, self.kv_dim), (h, self.kv_dim), (self.q_dim, h), (h, i), (h, i), (i, h)]

    @property
    def layer_params(self) -> int:
        weights = sum(a * b for a, b in self._linears())
        bias = (self.q_dim + 2 * self.kv_dim) if self.attention_bias else 0
        return weights + bias + 2 * self.hidden_size  # two RMSNorm weights

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tie_embeddings else self.vocab_size * self.hidden_size

    @property
    def params(self) -> int:
        """Causal LM: embeddings, layers, final norm, and an output head unless tied."""
        return (self.vocab_size * self.hidden_size + self.num_layers * self.layer_params + self.hidden_size
                + self.lm_head_params)

    @property
    def disc_params(self) -> int:
        """AutoModelForSequenceClassification(num_labels=1): the backbone and a 1-output `score` head
        (no bias) in place of the LM head."""
        return self.params - self.lm_head_params + self.hidden_size

    def lora_params(self, r: int) -> int:
        """LoRA adapters on every linear layer of every decoder layer (peft's target_modules='all-linear',
        which leaves the output head out): r * (in + out) each."""
        return self.num_layers * r * sum(a + b for a, b in self._linears())


# From each model's config.json on the Hugging Face hub (Qwen/Qwen2.5-*-Instruct,
# meta-llama/Llama-3.2-3B-Instruct, meta-llama/Llama-3.1-8B-Instruct). Their model cards give
# 0.49B, 1.54B, 3.09B, 7.61B, 14.7B, 3.21B and 8.03B parameters; tests/test_memory.py checks that the
# counts computed here agree, and that they equal a meta-device transformers model's.
PRESETS: dict[str, Arch] = {a.name: a for a in (
    Arch("Qwen2.5-0.5B", 896, 24, 151936, 4864, 14, 2, tie_embeddings=True),
    Arch("Qwen2.5-1.5B", 1536, 28, 151936, 8960, 12, 2, tie_embeddings=True),
    Arch("Qwen2.5-3B", 2048, 36, 151936, 11008, 16, 2, tie_embeddings=True),
    Arch("Qwen2.5-7B", 3584, 28, 152064, 18944, 28, 4, tie_embeddings=False),
    Arch("Qwen2.5-14B", 5120, 48, 152064, 13824, 40, 8, tie_embeddings=False),
    Arch("Llama-3.2-3B", 3072, 28, 128256, 8192, 24, 8, tie_embeddings=True, attention_bias=False),
    Arch("Llama-3.1-8B", 4096, 32, 128256, 14336, 32, 8, tie_embeddings=False, attention_bias=False),
)}


def arch_from_config(config: Any, name: str | None = None) -> Arch:
    """An Arch from a transformers config object or its dict (config.json): hidden_size,
    num_hidden_layers, vocab_size, intermediate_size, num_attention_heads, num_key_value_heads
    (default: num_attention_heads), tie_word_embeddings, attention_bias, head_dim.

    Qwen2 configs carry no attention_bias key (the model always has q/k/v biases), so a missing key
    means biases for model_type 'qwen2' and none otherwise.
    """
    c = config if isinstance(config, dict) else config.to_dict()
    missing = [k for k in ("hidden_size", "num_hidden_layers", "vocab_size", "intermediate_size",
                           "num_attention_heads") if c.get(k) is None]
    if missing:
        raise ValueError(f"config lacks {', '.join(missing)}: not a decoder-only transformer this estimate knows")
    bias = c.get("attention_bias")
    return Arch(name=name or c.get("_name_or_path") or c.get("model_type") or "model",
                hidden_size=c["hidden_size"], num_layers=c["num_hidden_layers"], vocab_size=c["vocab_size"],
                intermediate_size=c["intermediate_size"], num_heads=c["num_attention_heads"],
                num_kv_heads=c.get("num_key_value_heads") or c["num_attention_heads"],
                tie_embeddings=bool(c.get("tie_word_embeddings", False)),
                attention_bias=(c.get("model_type") == "qwen2") if bias is None else bool(bias),
                head_dim=c.get("head_dim"))


def arch_from_folder(folder: str | Path) -> Arch:
    """The Arch of a local model folder, from its config.json alone (no weights are read)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise ValueError(f"{folder}: no config.json, so the model's sizes are unknown")
    return arch_from_config(json.loads(path.read_text()), name=Path(folder).name)


def arch_for_model(model: str) -> Arch | None:
    """The sizes of a student named as on a run's form: a local folder (its config.json), else a hub
    id naming one of PRESETS ('Qwen/Qwen2.5-1.5B-Instruct' -> Qwen2.5-1.5B); None if neither."""
    folder = Path(model).expanduser()
    if (folder / "config.json").is_file():
        return arch_from_folder(folder)
    name = Path(model).name.lower()
    found = [a for key, a in PRESETS.items() if key.lower() in name]
    return max(found, key=lambda a: len(a.name)) if found else None


# ----------------------------------------------------------------------------------------------
# The estimate
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
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


def activation_bytes_per_token_layer(arch: Arch, dtype: str = "auto") -> int:
    """Bytes autograd saves per token per decoder layer (see the module docstring for the fit)."""
    h, i, kv = arch.hidden_size, arch.intermediate_size, arch.kv_dim
    if dtype == "float32":
        return 32 * h + 16 * i + 8 * kv
    return 30 * h + 8 * i + 4 * kv


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
