"""The sizes of a decoder-only transformer that GPU memory depends on, and the arithmetic on them alone.

`Arch` holds a model's sizes (Qwen2/Llama layout) and counts its parameters: as a causal LM, as the
discriminator (the same backbone with a one-output head) and as LoRA adapters. `PRESETS` names the
sizes of the students the deployment guide covers; `arch_from_config`, `arch_from_folder` and
`arch_for_model` read them from a config.json or a model's name. gad.training.memory turns them into
bytes per GPU.

Activations, bytes per token per decoder layer (Qwen2/Llama layout: RMSNorm, attention through
SDPA/flash so no seq^2 term, SwiGLU MLP), fitted to the tensors autograd saves, measured with
torch.autograd.graph.saved_tensors_hooks on Qwen2 layers (transformers 5.20, torch 2.13):
    bf16 autocast over fp32 weights: 30*h + 8*intermediate + 4*kv_dim   (+ tests re-measure it)
    float32:                         32*h + 16*intermediate + 8*kv_dim
(pure bf16 weights save about 15% less; the autocast figure is used for them too, erring high).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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


def activation_bytes_per_token_layer(arch: Arch, dtype: str = "auto") -> int:
    """Bytes autograd saves per token per decoder layer (the fit is in the module docstring)."""
    h, i, kv = arch.hidden_size, arch.intermediate_size, arch.kv_dim
    if dtype == "float32":
        return 32 * h + 16 * i + 8 * kv
    return 30 * h + 8 * i + 4 * kv
