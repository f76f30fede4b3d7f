"""Calling an OpenAI-compatible chat endpoint many times, safely and only once per question.

Shared by teacher collection and the judge. One `Endpoint` names a model behind a base URL; the
API key is read from an environment variable whose *name* is configured, so the key itself is
never in a config file, a log line or a cache record. `Endpoint` is the one definition of an
endpoint's settings: the command line's flags and the studio's endpoint form come from its fields.

`ChatRunner.run(requests)` sends each request at most once across runs and processes (the shared,
content-addressed cache of gad/llm/cache.py, which also journals requests in flight), with:
  - bounded concurrency and requests/tokens-per-minute limits (token buckets);
  - retries with exponential backoff and full jitter, honouring `Retry-After` on 429/5xx;
  - a split between retryable failures (429, 5xx, timeouts, dropped connections, malformed
    bodies) and final ones (400/409/422, content-filter refusals), which are recorded for that
    request and never stop the others;
  - a stop of the whole run, with nothing cached, when the endpoint cannot be used at all: the key
    is rejected (401/403), the base path or model does not exist (404), or every connection is
    refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from gad.llm.cache import (
    HOST,
    MemoryStore,
    ResponseStore,
    cache_key,
    in_flight_elsewhere,
    is_answer,
    pending_record,
)

# USD per million tokens (prompt, completion), as published in 2025; override per run.
KNOWN_PRICES = {"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6), "gpt-4.1": (2.0, 8.0),
                "gpt-4.1-mini": (0.4, 1.6), "gpt-5": (1.25, 10.0), "gpt-5-mini": (0.25, 2.0)}

# Connection failures in a row (no HTTP answer in between) that stop a run: few while the endpoint
# has never answered in this run (a wrong URL or a server that is not running), more once it has
# (a server restarting mid-run gets its chance; the per-request retries still apply).
CONNECT_FAILURES_BEFORE_ANY_ANSWER = 3
CONNECT_FAILURES_AFTER_AN_ANSWER = 30

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The user-info part of a URL (scheme://user:password@host): an authority has no '/', '?', '#' or
# blank, and the greedy match ends at its last '@' (passwords hold raw '@'s more often than not).
_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")


def mask_url(text: str) -> str:
    """`text` with the credentials of every URL in it masked: http://***@host/v1. For anything shown
    or logged: a base URL may carry a password (http://user:password@host/v1)."""
    return _USERINFO.sub(r"\1***@", text)


class _MaskUrls(logging.Filter):
    """httpx logs each request's full URL at INFO: mask its credentials before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(mask_url(a) if isinstance(a, str) else
                                (mask_url(str(a)) if "://" in str(a) and "@" in str(a) else a) for a in record.args)
        if isinstance(record.msg, str) and "@" in record.msg:
            record.msg = mask_url(record.msg)
        return True


for _logger in ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "openai._base_client"):
    logging.getLogger(_logger).addFilter(_MaskUrls())


class EndpointError(RuntimeError):
    """The endpoint cannot be used at all (no key, key rejected, wrong URL or model): the run stops."""


class Endpoint(BaseModel):
    # hide_input_in_errors: a key pasted into the wrong field must not come back in an error message.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    base_url: str = Field(..., description="OpenAI-compatible base URL, e.g. https://api.openai.com/v1.")
    model: str = Field(..., description="Model name at that endpoint.")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="Name of the environment variable holding "
                                    "the API key (the key itself is never stored); empty: no key.")
    temperature: float | None = Field(None, ge=0, description="Sampling temperature (none: the endpoint's default).")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling (none: the endpoint's default).")
    max_tokens: int | None = Field(None, gt=0, description="Maximum completion tokens (none: the endpoint's default).")
    system_prompt: str | None = Field(None, description="System message put before every prompt.")
    concurrency: int = Field(16, gt=0, description="Requests in flight at once.")
    rpm: float | None = Field(None, gt=0, description="Requests-per-minute limit.")
    tpm: float | None = Field(None, gt=0, description="Tokens-per-minute limit (prompt estimate + max tokens).")
    max_retries: int = Field(6, ge=0, description="Retries of a retryable failure before giving up on it.")
    timeout: float = Field(120.0, gt=0, description="Seconds before one request times out.")
    backoff_base: float = Field(1.0, gt=0, description="First backoff in seconds; doubles per retry (with jitter).")
    backoff_max: float = Field(60.0, gt=0, description="Longest backoff in seconds.")
    price_prompt: float | None = Field(None, ge=0, description="USD per million prompt tokens (default: known table).")
    price_completion: float | None = Field(None, ge=0, description="USD per million completion tokens "
                                           "(default: known table).")
    # Set only in memory by the studio (decrypted from its database); never dumped, printed or cached.
    api_key_value: SecretStr | None = Field(None, exclude=True, repr=False)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value.strip()):
            raise ValueError("should start with http:// or https:// and name a host, e.g. https://api.openai.com/v1")
        return value.strip()

    @field_validator("api_key_env")
    @classmethod
    def _env_name_not_key(cls, value: str | None) -> str | None:
        if not value:
            return None
        if value.startswith(("sk-", "sk_")) or not _ENV_NAME.match(value):
            # The value is not repeated: it is most likely the key itself.
            raise ValueError("this looks like an API key, not the name of an environment variable: put the key "
                             "in a variable (export OPENAI_API_KEY=...) and pass the variable's name; "
                             "the value given is not shown")
        return value

    @classmethod
    def tunable_fields(cls) -> tuple[str, ...]:
        """Settings of how to call (sampling, limits, retries, prices): all but where, what and the key."""
        return ENDPOINT_PARAM_FIELDS

    def api_key(self) -> str:
        if self.api_key_value is not None:
            return self.api_key_value.get_secret_value()
        if not self.api_key_env:
            return "no-key"  # local servers (vLLM, Ollama) accept anything
        key = os.environ.get(self.api_key_env)
        if not key:
            raise EndpointError(f"environment variable {self.api_key_env} is not set: export the API key for "
                                f"{mask_url(self.base_url)} there (the key is read from the environment, never from "
                                f"files)")
        return key

    def prices(self) -> tuple[float, float]:
        known = KNOWN_PRICES.get(self.model, (0.0, 0.0))
        return (self.price_prompt if self.price_prompt is not None else known[0],
                self.price_completion if self.price_completion is not None else known[1])

    def sampling(self) -> dict[str, Any]:
        return {k: v for k, v in (("temperature", self.temperature), ("top_p", self.top_p),
                                  ("max_tokens", self.max_tokens)) if v is not None}


ENDPOINT_IDENTITY_FIELDS = ("base_url", "model", "api_key_env", "api_key_value")
ENDPOINT_PARAM_FIELDS: tuple[str, ...] = tuple(f for f in Endpoint.model_fields if f not in ENDPOINT_IDENTITY_FIELDS)


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
    cached: int = 0            # answered from the cache, by another live run, or a duplicate in this run
    ok: int = 0
    refused: int = 0           # content filter: final
    failed: int = 0            # final errors and exhausted retries
    retries: int = 0
    lost_earlier: int = 0      # sent by an earlier run that stopped before recording an answer (maybe billed)
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
            pass  # malformed header: fall back to retry-after or our own backoff
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


class _AskedElsewhere(Exception):
    """Another run answered or claimed this question between our look and our claim."""


class _Unusable(Exception):
    """A 200 answer that is no use as data (no choices, no text): retried like a server error."""


class ChatRunner:
    """Runs chat requests against one endpoint with cache, limits, retries and a ledger."""

    def __init__(self, endpoint: Endpoint, store: ResponseStore | None = None,
                 on_result: Callable[[dict, Ledger], None] | None = None, retry_final: bool = False):
        self.endpoint = endpoint
        self.store = store if store is not None else MemoryStore()
        self.on_result = on_result
        self.retry_final = retry_final  # re-ask prompts that were refused or rejected before
        self.ledger = Ledger()
        self.run_id = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._connect_failures = 0      # in a row, with no HTTP answer in between
        self._heard = False             # the endpoint has answered at least once in this run

    def run(self, requests: list[list[dict]]) -> list[dict]:
        """Blocking wrapper; returns one result dict per request, in order."""
        return asyncio.run(self.arun(requests))

    async def arun(self, requests: list[list[dict]]) -> list[dict]:
        import openai

        ep = self.endpoint
        results: list[dict | None] = [None] * len(requests)
        todo: dict[str, tuple[list[dict], list[int]]] = {}  # key -> (messages, every index asking it)
        for i, messages in enumerate(requests):
            full = self._with_system(messages)
            key = cache_key(ep, full)
            if key in todo:  # the same question twice in one run is asked once
                todo[key][1].append(i)
                continue
            hit = self.store.get(key)
            if is_answer(hit, self.retry_final):
                self._deliver(results, [i], hit, cached=True)
                continue
            if hit is not None and hit["status"] == "pending" and not in_flight_elsewhere(hit, self.run_id, ep.timeout):
                self.ledger.lost_earlier += 1
            todo[key] = (full, [i])
        if not todo:
            return results  # type: ignore[return-value]

        client = openai.AsyncOpenAI(base_url=ep.base_url, api_key=ep.api_key(), max_retries=0, timeout=ep.timeout)
        rpm = TokenBucket(ep.rpm) if ep.rpm else None
        tpm = TokenBucket(ep.tpm) if ep.tpm else None
        queue: asyncio.Queue = asyncio.Queue()
        for item in todo.items():
            queue.put_nowait(item)
        stop = asyncio.Event()
        fatal: list[EndpointError] = []

        async def worker():
            while not stop.is_set():
                try:
                    key, (messages, indices) = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                record, cached = None, True
                while record is None and not stop.is_set():
                    record = await self._answer_of_other_run(key, stop)
                    if record is None:
                        try:
                            record, cached = await self._one(client, key, messages, rpm, tpm, stop), False
                        except _AskedElsewhere:
                            continue  # another run claimed it first: wait for its answer
                        except EndpointError as err:
                            fatal.append(err)
                            stop.set()
                            return
                if record is not None:  # None: the run stopped before this one was asked
                    self._deliver(results, indices, record, cached)

        try:
            await asyncio.gather(*(worker() for _ in range(min(ep.concurrency, len(todo)))))
        finally:
            await client.close()
        if fatal:
            raise fatal[0]
        return results  # type: ignore[return-value]

    def _deliver(self, results: list, indices: list[int], record: dict, cached: bool) -> None:
        for n, i in enumerate(indices):
            from_cache = cached or n > 0
            if from_cache:
                self.ledger.cached += 1
            results[i] = {**record, "cached": from_cache}
            if self.on_result:
                self.on_result(results[i], self.ledger)

    def _with_system(self, messages: list[dict]) -> list[dict]:
        if self.endpoint.system_prompt and not (messages and messages[0].get("role") == "system"):
            return [{"role": "system", "content": self.endpoint.system_prompt}] + list(messages)
        return list(messages)

    async def _answer_of_other_run(self, key: str, stop: asyncio.Event) -> dict | None:
        """Another live process is asking this very question now: wait for its answer, do not pay twice."""
        record = self.store.get(key)
        while record is not None and in_flight_elsewhere(record, self.run_id, self.endpoint.timeout):
            if await _wait(stop, 0.25):
                return None
            record = self.store.get(key)
        return record if is_answer(record, self.retry_final) else None

    async def _one(self, client, key: str, messages: list[dict], rpm: TokenBucket | None, tpm: TokenBucket | None,
                   stop: asyncio.Event) -> dict | None:
        """Ask one question until it has an outcome; every attempt is journalled before it is sent."""
        import openai

        ep, led = self.endpoint, self.ledger
        attempt = 0
        while True:
            if rpm:
                await rpm.take(1)
            if tpm:
                await tpm.take(_estimate_tokens(messages) + (ep.max_tokens or 512))
            if stop.is_set():
                return None
            attempt += 1
            self._claim(key, attempt)
            led.requests += 1
            try:
                resp = await client.chat.completions.create(model=ep.model, messages=messages, **ep.sampling())
                self._answered()
                record = self._record(resp)
                self.store.put(key, record)
                return record
            except openai.APIStatusError as err:
                self._answered()
                record = self._final_status(key, err)  # raises EndpointError when the endpoint is unusable
                if record is not None:
                    self.store.put(key, record)
                    return record
                reason, hinted_wait = f"HTTP {err.status_code}: {_message(err)}", _retry_after(err)
            except openai.APIConnectionError as err:  # timeouts and dropped or refused connections
                self._connection_failed(key, err)
                reason, hinted_wait = f"{type(err).__name__}: {_root_cause(err)}", None
            except (openai.APIResponseValidationError, json.JSONDecodeError, _Unusable) as err:  # a malformed body
                self._answered()
                reason, hinted_wait = f"{type(err).__name__}: {_message(err)}", None
            # a retryable failure: settle this attempt in the journal, then back off or give up
            settled = {"status": "failed", "final": False, "attempts": attempt,
                       "error": f"gave up after {attempt} attempts; last error {reason}"}
            self.store.put(key, settled)
            if attempt > ep.max_retries:
                led.failed += 1
                return settled
            led.retries += 1
            wait = hinted_wait
            if wait is None:  # exponential backoff with full jitter
                wait = random.uniform(0, min(ep.backoff_max, ep.backoff_base * 2 ** (attempt - 1)))
            if await _wait(stop, min(wait, ep.backoff_max)):
                return None

    def _claim(self, key: str, attempt: int) -> None:
        """Journal an attempt before it is sent; raises _AskedElsewhere if another run got there first."""
        pending = pending_record(self.run_id, attempt)
        put_if = getattr(self.store, "put_if", None)
        if put_if is None:  # a store with only get/put: see ResponseStore
            self.store.put(key, pending)
            return
        def still_to_ask(current: dict | None) -> bool:
            return current is None or not (is_answer(current, self.retry_final)
                                           or in_flight_elsewhere(current, self.run_id, self.endpoint.timeout))

        if put_if(key, pending, still_to_ask) is not None:
            raise _AskedElsewhere()

    def _record(self, resp) -> dict:
        ep, led = self.endpoint, self.ledger
        if not getattr(resp, "choices", None):
            raise _Unusable("the response has no choices")
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
            return {"status": "refused", "final": True, "response": text or "", "finish_reason": "content_filter",
                    "usage": {"prompt_tokens": pt, "completion_tokens": ct}, "cost": cost,
                    "error": "refused by the endpoint's content filter"}
        if text is None or not text.strip():
            raise _Unusable("the response has no message content")  # paid, but useless as data
        led.ok += 1
        return {"status": "ok", "response": text, "finish_reason": choice.finish_reason,
                "usage": {"prompt_tokens": pt, "completion_tokens": ct}, "cost": cost}

    def _final_status(self, key: str, err) -> dict | None:
        """An HTTP error status -> a final record, None (retryable), or EndpointError (stop the run)."""
        ep = self.endpoint
        status = err.status_code
        if status in (401, 403):
            self._stop(key, f"HTTP {status}")
            source = f"${ep.api_key_env}" if ep.api_key_env else "the stored key"
            raise EndpointError(f"{mask_url(ep.base_url)} rejected the API key from {source} "
                                f"(HTTP {status}); nothing more was sent") from None
        if status == 404:
            self._stop(key, "HTTP 404")
            raise EndpointError(f"{mask_url(ep.base_url)} answered 404 Not Found for model '{ep.model}' "
                                f"({_message(err)}): the base URL's path is wrong (it usually ends in /v1) or "
                                f"the model does not exist there; nothing more was sent and nothing was "
                                f"cached") from None
        if status in (400, 409, 422):  # about this request: final for it, the others go on
            self.ledger.failed += 1
            return {"status": "failed", "final": True, "error": f"HTTP {status}: {_message(err)}"}
        return None

    def _stop(self, key: str, reason: str) -> None:
        """Settle the journal entry of a request whose run stops: not an answer, asked again next time."""
        self.store.put(key, {"status": "failed", "final": False, "error": f"the run stopped ({reason})"})

    def _answered(self) -> None:
        self._heard = True
        self._connect_failures = 0

    def _connection_failed(self, key: str, err: Exception) -> None:
        """Count refused connections; stop the run when nobody is listening at the base URL."""
        if not _is_connect_error(err):
            return  # a timeout or a dropped connection: the server is there, retry as usual
        self._connect_failures += 1
        limit = CONNECT_FAILURES_AFTER_AN_ANSWER if self._heard else CONNECT_FAILURES_BEFORE_ANY_ANSWER
        if self._connect_failures >= limit:
            self._stop(key, "no connection")
            when = "it stopped answering during this run" if self._heard else "it has not answered once"
            raise EndpointError(f"cannot connect to {mask_url(self.endpoint.base_url)}: {_root_cause(err)} "
                                f"({self._connect_failures} attempts in a row; {when}). Check the base URL and "
                                f"that the server is running; the run stopped") from None


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, waking early when the run stops; True if it stopped."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
        return True
    except TimeoutError:
        return False


def _is_connect_error(err: BaseException) -> bool:
    """The connection itself failed (refused, unknown host), as opposed to a timeout or a reset.

    The SDK wraps its HTTP library's ConnectError (httpx or httpx2, by SDK version): match by name.
    """
    cause = err.__cause__
    return cause is not None and any(c.__name__ == "ConnectError" for c in type(cause).__mro__)


def _root_cause(err: BaseException) -> str:
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__
    return mask_url(str(err).splitlines()[0][:200]) if str(err) else type(err).__name__


def _message(err: Exception) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return mask_url(str(inner["message"]))
    return mask_url(str(err).splitlines()[0][:200])
