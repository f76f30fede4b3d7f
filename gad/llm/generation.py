"""Sampling from a model with transformers (CPU or GPU): batched for training and evaluation,
streamed token by token for chat. `load_model` and the generate functions are apart, so a server
keeps a model loaded across requests.

The adversarial stage samples through TRL (which can use vLLM); this backend serves the warmup
stage's fresh student samples and evaluation. Inputs and outputs are token ids, so the caller
builds discriminator sequences from exactly the ids that were sampled.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from gad.training.modeling import TokenInfo, split_response


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


# ----------------------------------------------------------------------------------------------
# Samplers: where the training loop's student samples come from
# ----------------------------------------------------------------------------------------------
class TransformersSampler:
    """`sample_responses` on the live training model: no copy, no weight sync; slow at long lengths."""

    def __init__(self, info: TokenInfo, **sampling):
        self.info, self.sampling = info, sampling

    def __call__(self, model, prompts: list[list[int]], **overrides) -> list[list[tuple[list[int], bool]]]:
        return sample_responses(model, prompts, info=self.info, **{**self.sampling, **overrides})


class VllmSampler:
    """vLLM on the GPU through TRL's own VLLMGeneration (the engine GRPO uses), for the samples the
    warmup's discriminator trains on: at 1,536-token responses transformers' generate would
    dominate a GPU run. The engine's weights are re-synced from the training model whenever the
    optimizer has stepped since the last sync (the generator trains during warmup)."""

    def __init__(self, trainer, info: TokenInfo, *, n: int, max_new_tokens: int, temperature: float, top_p: float,
                 mode: str, server_url: str | None, gpu_memory_utilization: float, max_model_length: int):
        require_vllm()
        from trl.generation.vllm_generation import VLLMGeneration

        self.trainer, self.info, self.n = trainer, info, n
        self._synced_step = -1
        self.engine = VLLMGeneration(
            model=trainer.model, accelerator=trainer.accelerator, processing_class=trainer.processing_class,
            mode=mode, server_base_url=server_url, gpu_memory_utilization=gpu_memory_utilization,
            max_model_length=max_model_length, temperature=temperature, top_p=top_p,
            max_completion_length=max_new_tokens, logprobs=None)

    def __call__(self, model, prompts: list[list[int]], **overrides) -> list[list[tuple[list[int], bool]]]:
        from gad.training.modeling import split_response

        step = self.trainer.state.global_step
        if step != self._synced_step:
            self.engine.sync_weights()
            self._synced_step = step
        n = overrides.get("n", self.n)
        _, completions, _, _ = self.engine.generate(prompts, None, n)
        # vLLM returns the group's n completions for each prompt, in prompt order
        groups = [completions[i * n:(i + 1) * n] for i in range(len(prompts))]
        return [[_finish(split_response(ids, self.info), ids, self.info) for ids in g] for g in groups]


def _finish(split: tuple[list[int], bool], raw: list[int], info: TokenInfo) -> tuple[list[int], bool]:
    # vLLM strips nothing and pads nothing: a completion ends at a stop token or at the length limit.
    ids, finished = split
    return ids, finished or (bool(raw) and raw[-1] in info.stop_ids)


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def require_vllm() -> None:
    from gad.training.config import ConfigError

    if not vllm_available():
        raise ConfigError("use_vllm: vLLM is not installed here; on a GPU machine install the extra "
                          "(pip install -e '.[vllm]') or turn use_vllm off")


def vllm_generate(model_path: str, conversations: list[list[dict]], *, max_new_tokens: int, temperature: float,
                  top_p: float = 1.0, greedy: bool = False, seed: int | None = None,
                  trust_remote_code: bool = False, gpu_memory_utilization: float = 0.85):
    """Evaluation and study generation with vLLM's offline engine: same prompts (rendered by the same
    chat template), same outputs as generate_for_messages, many times faster on a GPU."""
    require_vllm()
    from vllm import LLM, SamplingParams

    from gad.training.modeling import load_tokenizer

    tok = load_tokenizer(model_path, trust_remote_code)
    llm = LLM(model=model_path, tokenizer=model_path, trust_remote_code=trust_remote_code, seed=seed or 0,
              gpu_memory_utilization=gpu_memory_utilization)
    params = SamplingParams(n=1, max_tokens=max_new_tokens, temperature=0.0 if greedy else temperature,
                            top_p=1.0 if greedy else top_p, seed=seed)
    from gad.data.examples import render_prompt

    prompts = [{"prompt_token_ids": tok(render_prompt(m, tok, "chat"), add_special_tokens=False)["input_ids"]}
               for m in conversations]
    for request in llm.generate(prompts, params):
        out = request.outputs[0]
        yield out.text, len(request.prompt_token_ids), len(out.token_ids), out.finish_reason == "stop"


@dataclass
class LoadedModel:
    """A causal LM loaded once and kept: serving, the local teacher and evaluation generate with it."""
    path: str
    model: object
    tokenizer: object
    info: TokenInfo
    device: str

    @property
    def bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())


def load_model(model_path: str, *, trust_remote_code: bool = False, device: str | None = None) -> LoadedModel:
    """Load tokenizer and weights (GPU if there is one). Loading is the slow part: do it once."""
    from pathlib import Path

    from transformers import AutoModelForCausalLM

    from gad.training.modeling import load_tokenizer, token_info

    tok = load_tokenizer(model_path, trust_remote_code)
    info = token_info(tok, model_path if Path(model_path).exists() else None)
    model = AutoModelForCausalLM.from_pretrained(model_path, trust_remote_code=trust_remote_code)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    return LoadedModel(model_path, model, tok, info, device)


def prompt_ids(loaded: LoadedModel, messages: list[dict]) -> list[int]:
    from gad.data.examples import render_prompt

    return loaded.tokenizer(render_prompt(messages, loaded.tokenizer, "chat"), add_special_tokens=False)["input_ids"]


def generate_batch(loaded: LoadedModel, conversations: list[list[dict]], *, max_new_tokens: int,
                   temperature: float = 0.8, top_p: float = 1.0, greedy: bool = False, batch_size: int = 16):
    """Yields (text, prompt_token_count, response_token_count, finished) per conversation, in order."""
    for start in range(0, len(conversations), batch_size):
        chunk = conversations[start:start + batch_size]
        prompts = [prompt_ids(loaded, m) for m in chunk]
        groups = sample_responses(loaded.model, prompts, n=1, max_new_tokens=max_new_tokens, temperature=temperature,
                                  top_p=top_p, info=loaded.info, greedy=greedy)
        for p, group in zip(prompts, groups):
            ids, finished = group[0]
            yield loaded.tokenizer.decode(ids, skip_special_tokens=True), len(p), len(ids), finished


def stream_chat(loaded: LoadedModel, messages: list[dict], *, max_new_tokens: int, temperature: float = 0.8,
                top_p: float = 1.0, stop: list[str] | None = None, seed: int | None = None) -> Iterator[dict]:
    """One chat answer, piece by piece: yields {"text": delta} then a final {"finish_reason", "usage"}.

    Tokens are decoded incrementally (the whole answer so far, minus what was sent), so multi-byte
    characters split over tokens never come out garbled; `stop` strings end the answer early."""
    if seed is not None:
        torch.manual_seed(seed)
    ids = prompt_ids(loaded, messages)
    past, generated, sent, finish = None, [], "", "length"
    input_ids = torch.tensor([ids], device=loaded.device)
    with torch.no_grad():
        for _ in range(max_new_tokens):
            out = loaded.model(input_ids=input_ids, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[0, -1].float()
            if temperature <= 0:
                token = int(torch.argmax(logits))
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                if top_p < 1.0:
                    sorted_p, order = torch.sort(probs, descending=True)
                    keep = torch.cumsum(sorted_p, 0) - sorted_p < top_p
                    probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
                token = int(torch.multinomial(probs / probs.sum(), 1))
            if token in loaded.info.stop_ids:
                finish = "stop"
                break
            generated.append(token)
            text = loaded.tokenizer.decode(generated, skip_special_tokens=True)
            if stop:
                cut = min((text.find(s) for s in stop if s and s in text), default=-1)
                if cut >= 0:
                    if text[len(sent):cut]:
                        yield {"text": text[len(sent):cut]}
                    finish = "stop"
                    break
            if text.endswith("\ufffd"):  # half a character: wait for the next token
                input_ids = torch.tensor([[token]], device=loaded.device)
                continue
            if len(text) > len(sent):
                yield {"text": text[len(sent):]}
                sent = text
            input_ids = torch.tensor([[token]], device=loaded.device)
    yield {"finish_reason": finish, "usage": {"prompt_tokens": len(ids), "completion_tokens": len(generated),
                                              "total_tokens": len(ids) + len(generated)}}


def generate_for_messages(model_path: str, conversations: list[list[dict]], *, max_new_tokens: int,
                          temperature: float = 0.8, top_p: float = 1.0, greedy: bool = False, seed: int | None = None,
                          batch_size: int = 16, trust_remote_code: bool = False):
    """Answer chat conversations with a model folder / hub id (GPU if there is one).

    Yields, in order, one (text, prompt_token_count, response_token_count, finished) per conversation.
    Used by the local teacher and by evaluation, so both render prompts the same way.
    """
    if seed is not None:
        torch.manual_seed(seed)
    loaded = load_model(model_path, trust_remote_code=trust_remote_code)
    yield from generate_batch(loaded, conversations, max_new_tokens=max_new_tokens, temperature=temperature,
                              top_p=top_p, greedy=greedy, batch_size=batch_size)
