"""Calling an OpenAI-compatible chat endpoint many times, safely and only once per question.

Shared by teacher collection and the judge. One `Endpoint` names a model behind a base URL; the
API key is read from an environment variable whose *name* is configured, so the key itself is
never in a config file, a log line or a cache record.

`ChatRunner.run(requests)` sends each request at most once across runs (a persistent cache keyed
by endpoint, model, sampling parameters and messages), with:
  - bounded concurrency and requests/tokens-per-minute limits (token buckets);
  - retries with exponential backoff and full jitter, honouring `Retry-After` on 429/5xx;
  - a split between retryable failures (429, 5xx, timeouts, dropped connections, malformed
    bodies) and final ones (400-class errors, content-filter refusals), which are recorded for
    that request and never stop the others. A rejected API key (401/403) stops the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr

# USD per million tokens (prompt, completion), as published in 2025; override per run.
KNOWN_PRICES = {"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6), "gpt-4.1": (2.0, 8.0),
                "gpt-4.1-mini": (0.4, 1.6), "gpt-5": (1.25, 10.0), "gpt-5-mini": (0.25, 2.0)}


class EndpointError(RuntimeError):
    """The endpoint cannot be used at all (no key, key rejected): the whole run stops."""


class Endpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(..., description="OpenAI-compatible base URL, e.g. https://api.openai.com/v1")
    model: str = Field(..., description="Model name at that endpoint.")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="Name of the environment variable holding "
                                    "the API key (the key itself is never stored). None: no key.")
    temperature: float | None = Field(None, ge=0, description="Sampling temperature (None: the endpoint's default).")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling (None: the endpoint's default).")
    max_tokens: int | None = Field(None, gt=0, description="Maximum completion tokens (None: the endpoint's default).")
    system_prompt: str | None = Field(None, description="Optional system message put before every prompt.")
    concurrency: int = Field(16, gt=0, description="Requests in flight at once.")
    rpm: float | None = Field(None, gt=0, description="Requests per minute limit.")
    tpm: float | None = Field(None, gt=0, description="Tokens per minute limit (prompt estimate + max tokens).")
    max_retries: int = Field(6, ge=0, description="Retries of a retryable failure before giving up on it.")
    timeout: float = Field(120.0, gt=0, description="Seconds before one request times out.")
    backoff_base: float = Field(1.0, gt=0, description="First backoff in seconds; doubles per retry (with jitter).")
    backoff_max: float = Field(60.0, gt=0, description="Longest backoff in seconds.")
    price_prompt: float | None = Field(None, ge=0, description="USD per million prompt tokens (default: known table).")
    price_completion: float | None = Field(None, ge=0, description="USD per million completion tokens.")
    # Set only in memory by the studio (decrypted from its database); never dumped, printed or cached.
    api_key_value: SecretStr | None = Field(None, exclude=True, repr=False)

    def api_key(self) -> str:
        if self.api_key_value is not None:
            return self.api_key_value.get_secret_value()
        if not self.api_key_env:
            return "no-key"  # local servers (vLLM, Ollama) accept anything
        key = os.environ.get(self.api_key_env)
        if not key:
            raise EndpointError(f"environment variable {self.api_key_env} is not set: export the API key for "
                                f"{self.base_url} there (the key is read from the environment, never from files)")
        return key

    def prices(self) -> tuple[float, float]:
        known = KNOWN_PRICES.get(self.model, (0.0, 0.0))
        return (self.price_prompt if self.price_prompt is not None else known[0],
                self.price_completion if self.price_completion is not None else known[1])

    def sampling(self) -> dict[str, Any]:
        return {k: v for k, v in (("temperature", self.temperature), ("top_p", self.top_p),
                                  ("max_tokens", self.max_tokens)) if v is not None}


def cache_key(endpoint: Endpoint, messages: list[dict]) -> str:
    """Same endpoint, model, sampling and messages -> same key -> never paid twice."""
    ident = {"base_url": endpoint.base_url.rstrip("/"), "model": endpoint.model, **endpoint.sampling(),
             "messages": messages}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class ResponseStore(Protocol):
    """Where answers are kept between runs; the studio implements it with database rows."""

    def get(self, key: str) -> dict | None: ...
    def put(self, key: str, record: dict) -> None: ...


class JsonlStore:
    """Append-only JSONL cache; a line cut short by a crash is ignored on load.

    Every answer is flushed to the OS at once (a killed process loses nothing); fsync, which only
    guards against losing the machine, runs at most once per `sync_every` seconds and at close,
    because a per-answer fsync stalls the event loop that all requests share.
    """

    def __init__(self, path: str | Path, sync_every: float = 1.0):
        self.path = Path(path)
        self.sync_every = sync_every
        self._synced = time.monotonic()
        self._data: dict[str, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self._data[row["key"]] = row["record"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("a", encoding="utf-8")

    def get(self, key: str) -> dict | None:
        return self._data.get(key)

    def put(self, key: str, record: dict) -> None:
        self._data[key] = record
        self._fh.write(json.dumps({"key": key, "record": record}, ensure_ascii=False) + "\n")
        self._fh.flush()  # a kill right after a paid answer must not lose it
        if time.monotonic() - self._synced >= self.sync_every:
            os.fsync(self._fh.fileno())
            self._synced = time.monotonic()

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()


class MemoryStore:
    def __init__(self):
        self._data: dict[str, dict] = {}

    def get(self, key):
        return self._data.get(key)

    def put(self, key, record):
        self._data[key] = record


class TokenBucket:
    """`rate` units per minute, burst of one minute's worth; `take(n)` waits until n are available."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = per_minute
        self.level = per_minute
        self.updated = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self, n: float = 1.0) -> None:
        n = min(n, self.capacity)
        async with self.lock:
            while True:
                now = time.monotonic()
                self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
                self.updated = now
                if self.level >= n:
                    self.level -= n
                    return
                await asyncio.sleep((n - self.level) / self.rate)


@dataclass
class Ledger:
    requests: int = 0          # HTTP requests actually sent (retries included)
    cached: int = 0
    ok: int = 0
    refused: int = 0           # content filter: final
    failed: int = 0            # final errors and exhausted retries
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "started"}
        d["elapsed_s"] = round(time.monotonic() - self.started, 3)
        return d


def _retry_after(err: Exception) -> float | None:
    response = getattr(err, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _estimate_tokens(messages: list[dict]) -> int:
    return sum(len(str(m.get("content", ""))) for m in messages) // 4 + 8


class ChatRunner:
    """Runs chat requests against one endpoint with cache, limits, retries and a ledger."""

    def __init__(self, endpoint: Endpoint, store: ResponseStore | None = None,
                 on_result: Callable[[dict, Ledger], None] | None = None, retry_final: bool = False):
        self.endpoint = endpoint
        self.store = store if store is not None else MemoryStore()
        self.on_result = on_result
        self.retry_final = retry_final  # re-ask prompts that were refused or rejected before
        self.ledger = Ledger()

    def run(self, requests: list[list[dict]]) -> list[dict]:
        """Blocking wrapper; returns one result dict per request, in order."""
        return asyncio.run(self.arun(requests))

    async def arun(self, requests: list[list[dict]]) -> list[dict]:
        import openai

        ep = self.endpoint
        results: list[dict | None] = [None] * len(requests)
        pending = []
        for i, messages in enumerate(requests):
            full = self._with_system(messages)
            key = cache_key(ep, full)
            hit = self.store.get(key)
            if hit is not None and (hit["status"] == "ok" or not self.retry_final):
                self.ledger.cached += 1
                results[i] = {**hit, "cached": True}
                if self.on_result:
                    self.on_result(results[i], self.ledger)
            else:
                pending.append((i, key, full))
        if not pending:
            return results  # type: ignore[return-value]

        client = openai.AsyncOpenAI(base_url=ep.base_url, api_key=ep.api_key(), max_retries=0, timeout=ep.timeout)
        rpm = TokenBucket(ep.rpm) if ep.rpm else None
        tpm = TokenBucket(ep.tpm) if ep.tpm else None
        queue: asyncio.Queue = asyncio.Queue()
        for item in pending:
            queue.put_nowait(item)
        fatal: list[BaseException] = []

        async def worker():
            while not fatal:
                try:
                    i, key, messages = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                try:
                    record = await self._one(client, messages, rpm, tpm)
                except EndpointError as err:
                    fatal.append(err)
                    return
                if record["status"] != "failed" or record.get("final"):
                    self.store.put(key, record)  # final outcomes are kept; exhausted retries are not
                results[i] = {**record, "cached": False}
                if self.on_result:
                    self.on_result(results[i], self.ledger)

        try:
            await asyncio.gather(*(worker() for _ in range(min(ep.concurrency, len(pending)))))
        finally:
            await client.close()
        if fatal:
            raise fatal[0]
        return results  # type: ignore[return-value]

    def _with_system(self, messages: list[dict]) -> list[dict]:
        if self.endpoint.system_prompt and not (messages and messages[0].get("role") == "system"):
            return [{"role": "system", "content": self.endpoint.system_prompt}] + list(messages)
        return list(messages)

    async def _one(self, client, messages: list[dict], rpm: TokenBucket | None, tpm: TokenBucket | None) -> dict:
        import openai

        ep, led = self.endpoint, self.ledger
        attempt, last_error = 0, ""
        while True:
            if rpm:
                await rpm.take(1)
            if tpm:
                await tpm.take(_estimate_tokens(messages) + (ep.max_tokens or 512))
            led.requests += 1
            try:
                resp = await client.chat.completions.create(model=ep.model, messages=messages, **ep.sampling())
                if not getattr(resp, "choices", None):
                    raise ValueError("the response has no choices")
                choice = resp.choices[0]
                text = choice.message.content if choice.message else None
                usage = resp.usage
                pt = getattr(usage, "prompt_tokens", 0) or 0
                ct = getattr(usage, "completion_tokens", 0) or 0
                p_price, c_price = ep.prices()
                cost = (pt * p_price + ct * c_price) / 1e6
                led.prompt_tokens += pt
                led.completion_tokens += ct
                led.cost += cost
                if choice.finish_reason == "content_filter":
                    led.refused += 1
                    return {"status": "refused", "final": True, "response": text or "",
                            "finish_reason": "content_filter", "usage": {"prompt_tokens": pt, "completion_tokens": ct},
                            "cost": cost, "error": "refused by the endpoint's content filter"}
                if text is None or not text.strip():
                    raise ValueError("the response has no message content")  # retryable: useless as data
                led.ok += 1
                return {"status": "ok", "response": text, "finish_reason": choice.finish_reason,
                        "usage": {"prompt_tokens": pt, "completion_tokens": ct}, "cost": cost}
            except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
                raise EndpointError(f"{ep.base_url} rejected the API key from ${ep.api_key_env} "
                                    f"(HTTP {err.status_code}); nothing more was sent") from None
            except (openai.BadRequestError, openai.NotFoundError, openai.UnprocessableEntityError,
                    openai.ConflictError) as err:
                led.failed += 1
                return {"status": "failed", "final": True, "error": f"HTTP {err.status_code}: {_message(err)}"}
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError,
                    openai.APIResponseValidationError, openai.APIStatusError, ValueError) as err:
                last_error = f"{type(err).__name__}: {_message(err)}"
                attempt += 1
                if attempt > ep.max_retries:
                    led.failed += 1
                    return {"status": "failed", "final": False,
                            "error": f"gave up after {attempt} attempts; last error {last_error}"}
                led.retries += 1
                wait = _retry_after(err)
                if wait is None:  # exponential backoff with full jitter
                    wait = random.uniform(0, min(ep.backoff_max, ep.backoff_base * 2 ** (attempt - 1)))
                await asyncio.sleep(min(wait, ep.backoff_max))


def _message(err: Exception) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(err).splitlines()[0][:200]
