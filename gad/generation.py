"""Batched sampling from the student with transformers' `generate` (CPU or GPU).

The adversarial stage samples through TRL (which can use vLLM); this backend serves the warmup
stage's fresh student samples and evaluation. Inputs and outputs are token ids, so the caller
builds discriminator sequences from exactly the ids that were sampled.
"""

from __future__ import annotations

import torch

from gad.modeling import TokenInfo, split_response


@torch.no_grad()
def sample_responses(model, prompts: list[list[int]], *, n: int, max_new_tokens: int, temperature: float,
                     top_p: float, info: TokenInfo, greedy: bool = False,
                     max_batch: int = 64) -> list[list[tuple[list[int], bool]]]:
    """For each prompt, `n` responses as (ids without the stop token, finished)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    per_call = max(1, max_batch // n)
    out: list[list[tuple[list[int], bool]]] = []
    for start in range(0, len(prompts), per_call):
        chunk = prompts[start:start + per_call]
        width = max(len(p) for p in chunk)
        ids = torch.full((len(chunk), width), info.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(chunk):  # left padding: generation continues from the right edge
            ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1
        kwargs = dict(do_sample=False) if greedy else dict(do_sample=True, temperature=temperature, top_p=top_p)
        gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                             max_new_tokens=max_new_tokens, num_return_sequences=1 if greedy else n,
                             pad_token_id=info.pad_id, eos_token_id=sorted(info.stop_ids), **kwargs)
        new = gen[:, width:].tolist()
        reps = 1 if greedy else n
        for i in range(len(chunk)):
            group = [split_response(row, info) for row in new[i * reps:(i + 1) * reps]]
            out.append(group * n if greedy else group)
    model.train(was_training)
    return out


def generate_for_messages(model_path: str, conversations: list[list[dict]], *, max_new_tokens: int,
                          temperature: float = 0.8, top_p: float = 1.0, greedy: bool = False, seed: int | None = None,
                          batch_size: int = 16, trust_remote_code: bool = False):
    """Answer chat conversations with a model folder / hub id (GPU if there is one).

    Yields, in order, one (text, prompt_token_count, response_token_count, finished) per conversation.
    Used by the local teacher and by evaluation, so both render prompts the same way.
    """
    from pathlib import Path

    from transformers import AutoModelForCausalLM

    from gad.data import render_prompt
    from gad.modeling import load_tokenizer, token_info

    if seed is not None:
        torch.manual_seed(seed)
    tok = load_tokenizer(model_path, trust_remote_code)
    info = token_info(tok, model_path if Path(model_path).exists() else None)
    model = AutoModelForCausalLM.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    if torch.cuda.is_available():
        model = model.to("cuda")
    for start in range(0, len(conversations), batch_size):
        chunk = conversations[start:start + batch_size]
        prompts = [tok(render_prompt(m, tok, "chat"), add_special_tokens=False)["input_ids"] for m in chunk]
        groups = sample_responses(model, prompts, n=1, max_new_tokens=max_new_tokens, temperature=temperature,
                                  top_p=top_p, info=info, greedy=greedy)
        for p, group in zip(prompts, groups):
            ids, finished = group[0]
            yield tok.decode(ids, skip_special_tokens=True), len(p), len(ids), finished
