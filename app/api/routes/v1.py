"""OpenAI-compatible serving: /v1/models and /v1/chat/completions (streamed or not).

Any OpenAI client works against the studio: base_url http://host:8000/v1 and a studio API token
as the key. Checkpoints and base models answer from the loaded-model cache (transformers); a model
named endpoint/<name> is proxied to that teacher endpoint with its stored key.

No database session is held while a request waits for a model or generates (the session is closed
once the model is found). A client that goes away, streaming or not, stops the generation: the
answer's iterator is closed, which ends it at the next token and frees the model's turn."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import DB, Can, Ctx
from app.api.schemas import ERRORS
from app.errors import InvalidInput
from app.services import chat as svc

router = APIRouter(prefix="/v1", tags=["openai-compatible"], responses=ERRORS)
Chatter = Can("chat")


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # clients send more (user, logprobs ...); unsupported ones are ignored
    model: str = Field(..., max_length=500)
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=500)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, gt=0, le=32768)
    max_completion_tokens: int | None = Field(None, gt=0, le=32768)
    stop: str | list[str] | None = None
    stream: bool = False
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    n: int = Field(1, ge=1, le=1, description="Only one choice per request.")


class ChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: ChoiceMessage
    finish_reason: str


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


@router.get("/models", response_model=ModelList, summary="Checkpoints, base models and teacher endpoints")
def models(ctx: Ctx, _: Chatter, session: DB) -> ModelList:
    return ModelList(data=[ModelCard(id=m.id, created=m.created, owned_by=f"gad-studio:{m.kind}")
                           for m in svc.list_models(session, ctx.settings)])


def _messages(body: ChatRequest) -> list[dict]:
    out = []
    for i, m in enumerate(body.messages):
        content = m.content
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        if content is None:
            raise InvalidInput(f"messages.{i}.content: text is required", field=f"messages.{i}.content")
        out.append({"role": "system" if m.role == "developer" else m.role, "content": content})
    return out  # services.chat.answer checks there is something to answer


def _chunk(cid: str, created: int, model: str, delta: dict, finish: str | None = None) -> str:
    body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(body)}\n\n"


@router.post("/chat/completions", response_model=ChatCompletion,
             responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
             summary="Answer a conversation with any model from /v1/models")
async def chat_completions(body: ChatRequest, request: Request, ctx: Ctx, _: Chatter, session: DB):
    messages = _messages(body)
    pieces = await run_in_threadpool(  # finding the model is a query: off the event loop
        lambda: svc.answer(session, ctx.settings, request.app.state.models, body.model, messages,
                           max_new_tokens=body.max_completion_tokens or body.max_tokens or 512,
                           temperature=0.7 if body.temperature is None else body.temperature,
                           top_p=1.0 if body.top_p is None else body.top_p,
                           stop=[body.stop] if isinstance(body.stop, str) else body.stop, seed=body.seed))
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    session.close()
    # The first piece is taken before answering: loading the model or reaching the endpoint fails here,
    # as a proper HTTP error, not in the middle of a 200 stream.
    first = await run_in_threadpool(next, pieces)
    if body.stream:
        return StreamingResponse(_stream(cid, created, body.model, first, pieces), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    text, final = await _collect_unless_gone(request, first, pieces)
    usage = final.get("usage") or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return ChatCompletion(id=cid, created=created, model=body.model, usage=Usage(**usage),
                          choices=[Choice(message=ChoiceMessage(content=text),
                                          finish_reason=final.get("finish_reason", "stop"))])


def _next_or_none(pieces: Iterator[dict]) -> dict | None:
    return next(pieces, None)


async def _stream(cid: str, created: int, model: str, first: dict, pieces: Iterator[dict]):
    """SSE chunks. Starlette cancels this when the client disconnects; `finally` then closes the
    answer (the thread computing a token finishes it first, so the iterator is never closed mid-step)."""
    try:
        yield _chunk(cid, created, model, {"role": "assistant", "content": ""})
        piece = first
        while piece is not None:
            if "text" in piece:
                yield _chunk(cid, created, model, {"content": piece["text"]})
            else:
                yield _chunk(cid, created, model, {}, piece["finish_reason"])
            piece = await run_in_threadpool(_next_or_none, pieces)
        yield "data: [DONE]\n\n"
    finally:
        pieces.close()


async def _collect_unless_gone(request: Request, first: dict, pieces: Iterator[dict]) -> tuple[str, dict]:
    """The whole answer, gathered on a thread while the event loop watches the connection: a client
    that goes away stops the generation at the next token (nobody would read the answer)."""
    gone = threading.Event()

    def collect() -> tuple[str, dict]:
        text, final = [], {}
        try:
            piece = first
            while piece is not None and not gone.is_set():
                if "text" in piece:
                    text.append(piece["text"])
                else:
                    final = piece
                piece = next(pieces, None)
        finally:
            pieces.close()
        return "".join(text), final

    async def watch() -> None:
        while True:  # the body was read already: the next message is the disconnect
            if (await request.receive())["type"] == "http.disconnect":
                gone.set()
                return

    def collect_or_error():  # an error is re-raised outside the task group (which would wrap it in a group)
        try:
            return collect(), None
        except Exception as err:  # noqa: BLE001 - re-raised below, unchanged
            return None, err

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        result, error = await run_in_threadpool(collect_or_error)
        tg.cancel_scope.cancel()
    if error is not None:
        raise error
    return result
