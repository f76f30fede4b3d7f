"""Loading student and discriminator, and building the token sequences both models see.

The discriminator is the student's backbone with a fresh one-output head; a sequence's score is
the head's output at its last response token (end-of-turn included). Teacher and student
sequences are built by one function, `build_sequence`, from token ids, so the discriminator
cannot tell them apart by formatting artefacts (a stray space, a second end-of-turn, a BOS).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from gad.training.config import ConfigError

HUB_PROBE_TIMEOUT_S = 3.0  # transformers' own retries take about a minute to say the hub is unreachable


@dataclass(frozen=True)
class TokenInfo:
    """What sequence building needs to know about the tokenizer."""
    pad_id: int
    eot_id: int                 # appended to every finished response
    stop_ids: frozenset[int]    # any of these ends a sampled response


def resolve_dtype(name: str) -> torch.dtype:
    """Dtype of the stored weights. 'auto' keeps float32 master weights (compute runs in bfloat16
    autocast on a GPU, see `autocast_dtype`): with pure bf16 weights, AdamW updates at the paper's
    lr 1e-6 fall below bf16's resolution and are lost."""
    return {"auto": torch.float32, "float32": torch.float32, "bfloat16": torch.bfloat16,
            "float16": torch.float16}[name]


def autocast_dtype(name: str) -> torch.dtype | None:
    """Compute precision: bfloat16 autocast on a GPU for 'auto'/'bfloat16', float16 if asked, else none."""
    if not torch.cuda.is_available():
        return None
    return {"auto": torch.bfloat16, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(name)


def process_device() -> torch.device:
    """This process's accelerator (its LOCAL_RANK's GPU under torchrun/accelerate), else the CPU."""
    import os

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


# --------------------------------------------------------------------------------------------
# Where a model comes from: a folder or a hub id, checked before anything slow happens
# --------------------------------------------------------------------------------------------
def check_model_source(path: str) -> dict:
    """Fail fast, as a ConfigError, on a model that cannot be loaded; returns extra from_pretrained kwargs.

    A folder must exist and hold a config. A hub id must be well formed, and be either in the local
    Hugging Face cache or on a hub that answers within seconds; a cached model is loaded from the
    cache alone when the hub cannot be reached.
    """
    folder = Path(path).expanduser()
    if folder.is_dir():
        if not any((folder / f).is_file() for f in ("config.json", "adapter_config.json")):
            raise ConfigError(f"{path}: this folder holds no config.json, so it is not a saved model (a run's "
                              f"checkpoints keep theirs in checkpoints/step-N/student)")
        return {}
    if folder.exists():
        raise ConfigError(f"{path} is a file; a model is a folder (config.json, weights, tokenizer) or a hub id "
                          f"such as Qwen/Qwen2.5-0.5B-Instruct")
    if path.startswith(("/", ".", "~")) or "\\" in path or path.count("/") > 1 or path.endswith("/"):
        raise ConfigError(f"model folder not found: {path}")
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(path)
    except HFValidationError:
        raise ConfigError(f"model '{path}' is neither an existing folder nor a hub id "
                          f"(such as Qwen/Qwen2.5-0.5B-Instruct)") from None
    cached = isinstance(try_to_load_from_cache(path, "config.json"), str)
    not_here = (f"there is no folder {path} here, and the model is not in the local Hugging Face cache "
                f"({constants.HF_HUB_CACHE})")
    if constants.HF_HUB_OFFLINE:
        if cached:
            return {}
        raise ConfigError(f"{not_here}, and offline mode is on (HF_HUB_OFFLINE): download it first "
                          f"(hf download {path}) or give a local folder")
    problem = _hub_unreachable()
    if problem is None:
        return {}
    if cached:
        return {"local_files_only": True}
    raise ConfigError(f"{not_here}, and the hub ({constants.ENDPOINT}) cannot be reached ({problem}): download it "
                      f"where there is network (hf download {path}) or give a local folder")


def _hub_unreachable() -> str | None:
    """Why the hub cannot be reached within HUB_PROBE_TIMEOUT_S seconds, or None if it answers."""
    import httpx
    from huggingface_hub import constants

    try:
        httpx.head(constants.ENDPOINT, timeout=HUB_PROBE_TIMEOUT_S)
    except httpx.HTTPError as err:  # DNS failure, refused, timed out, proxy trouble
        return str(err) or type(err).__name__
    return None


@contextmanager
def _loading(path: str) -> Iterator[None]:
    """The hub's and transformers' 'cannot load' errors (OSError family) as one clear ConfigError."""
    from huggingface_hub.errors import HFValidationError

    try:
        yield
    except (OSError, HFValidationError) as err:
        detail = " ".join(str(err).split())[:400]
        raise ConfigError(f"cannot load the model {path}: {detail}") from err


def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    extra = check_model_source(path)
    with _loading(path):
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, **extra)
    if tok.eos_token_id is None:
        raise ConfigError(f"{path}: the tokenizer has no eos token; GAD needs an end-of-turn token")
    if tok.pad_token_id is None or tok.pad_token_id == tok.eos_token_id:
        # Pad must differ from end-of-turn; prefer a reserved token the model already has.
        spare = next((t for t in ("<|finetune_right_pad_id|>", "<|endoftext|>", "<pad>", "<|pad|>")
                      if t in tok.get_vocab() and tok.convert_tokens_to_ids(t) != tok.eos_token_id), None)
        if spare is None:
            raise ConfigError(f"{path}: no pad token distinct from the end-of-turn token was found")
        tok.pad_token = spare
    tok.padding_side = "left"  # for generation; sequence batches are padded by `pad_sequences`
    return tok


def token_info(tokenizer, model_path: str | None = None) -> TokenInfo:
    stop = {tokenizer.eos_token_id}
    if model_path is not None:
        try:
            from transformers import GenerationConfig

            eos = GenerationConfig.from_pretrained(model_path).eos_token_id
            stop.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        except OSError:  # no generation_config.json: the tokenizer's eos is enough
            pass
    return TokenInfo(pad_id=tokenizer.pad_token_id, eot_id=tokenizer.eos_token_id, stop_ids=frozenset(stop))


def split_response(ids: list[int], info: TokenInfo) -> tuple[list[int], bool]:
    """Cut a sampled token list at its first stop token -> (response ids without it, finished)."""
    for i, tok in enumerate(ids):
        if tok in info.stop_ids:
            return list(ids[:i]), True
        if tok == info.pad_id:  # right padding after a truncated response
            return list(ids[:i]), False
    return list(ids), False


def build_sequence(prompt_ids: list[int], response_ids: list[int], finished: bool, info: TokenInfo) -> list[int]:
    """THE way a (prompt, response) pair becomes tokens, for teacher and student alike."""
    return list(prompt_ids) + list(response_ids) + ([info.eot_id] if finished else [])


def pad_sequences(seqs: list[list[int]], pad_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad -> (input_ids (B, T), attention_mask (B, T))."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids.to(device), mask.to(device)


def last_token_scores(per_token: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) per-position scores, right-padded mask (B, T) -> (B,) score at each last real token."""
    last = attention_mask.sum(dim=1) - 1
    return per_token.gather(1, last.unsqueeze(1)).squeeze(1)


def score_sequences(disc, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Discriminator scores (B,) at the last real token, independent of what the pad token is.

    We apply the score head to the final hidden states ourselves instead of trusting the
    class's own pooling, which looks for the last non-pad *token id* and so breaks when a model
    reuses its pad id elsewhere.
    """
    out = disc(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    hidden = out.hidden_states[-1]
    head = disc.score if hasattr(disc, "score") else disc.get_output_embeddings()
    per_token = head(hidden).squeeze(-1).float()
    return last_token_scores(per_token, attention_mask)


def lora_config(cfg, task_type: str):
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules="all-linear", task_type=task_type,
                      modules_to_save=["score"] if task_type == "SEQ_CLS" else None)


def is_adapter_folder(path: str) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def load_student(path: str, cfg, *, base: str | None = None):
    """Causal LM from a hub id or folder; an adapter folder is put back on its `base`."""
    from transformers import AutoModelForCausalLM

    dtype = resolve_dtype(cfg.dtype)
    if is_adapter_folder(path):
        from peft import PeftModel

        base = base or cfg.student
        extra = check_model_source(base)
        with _loading(base):
            model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, trust_remote_code=cfg.trust_remote_code,
                                                         **extra)
        return PeftModel.from_pretrained(model, path, is_trainable=True)
    extra = check_model_source(path)
    with _loading(path):
        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=cfg.trust_remote_code,
                                                    **extra)


def load_discriminator(path: str, cfg, pad_id: int, *, fresh_head_seed: int | None = None):
    """Student backbone + scalar head. `path` is a student folder (fresh head) or a saved discriminator."""
    from transformers import AutoModelForSequenceClassification

    dtype = resolve_dtype(cfg.dtype)
    if is_adapter_folder(path):
        from peft import PeftModel

        with _loading(cfg.student):
            base = AutoModelForSequenceClassification.from_pretrained(
                cfg.student, num_labels=1, dtype=dtype, trust_remote_code=cfg.trust_remote_code,
                **check_model_source(cfg.student))
        base.config.pad_token_id = pad_id
        return PeftModel.from_pretrained(base, path, is_trainable=True)
    if fresh_head_seed is not None:
        # Same seed on every rank -> the same fresh head everywhere (it is also broadcast later).
        torch.manual_seed(fresh_head_seed)
    extra = check_model_source(path)
    with _loading(path):
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, dtype=dtype, trust_remote_code=cfg.trust_remote_code, **extra)
    model.config.pad_token_id = pad_id
    if cfg.lora and fresh_head_seed is not None:
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(cfg, "SEQ_CLS"))
    return model
