"""Build a tiny random Qwen2-architecture model with its own tokenizer, fully offline.

Used by tests, CI and the demo: no hub access, seconds to build. The tokenizer is a byte-level
BPE trained on the bundled prompt sets, with Qwen2's pre-tokenizer pipeline (so AutoTokenizer's
substitution of Qwen2's tokenizer class behaves the same), a ChatML chat template, and distinct
pad (`<|endoftext|>`) and end-of-turn (`<|im_end|>`) tokens: the discriminator pools the last
non-pad token, so the two must differ.
"""

from __future__ import annotations

import json
from pathlib import Path

from gad.data.resources import bundled_dataset_paths

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def _corpus(limit_chars: int = 400_000) -> list[str]:
    texts, total = [], 0
    for path in bundled_dataset_paths():
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            for key in ("prompt", "reference"):
                if row.get(key):
                    texts.append(row[key])
                    total += len(row[key])
            if total > limit_chars:
                return texts
    return texts


def build_tokenizer(vocab_size: int = 1024):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=["<|im_start|>"])
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(out_dir: str | Path, seed: int = 0, hidden_size: int = 64, layers: int = 2,
                     vocab_size: int = 1024) -> Path:
    """Write a random tiny causal LM + tokenizer to `out_dir`; returns the folder."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen2Config

    out_dir = Path(out_dir)
    tokenizer = build_tokenizer(vocab_size)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id], pad_token_id=tokenizer.pad_token_id,
        do_sample=True, temperature=0.8)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
