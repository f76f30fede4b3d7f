"""OpenAI-compatible serving: /v1/models and /v1/chat/completions (streamed or not).

Any OpenAI client works against the studio: base_url http://host:8000/v1 and a studio API token
as the key. Checkpoints and base models answer from the loaded-model cache (transformers); a model
named endpoint/<name> is proxied to that teacher endpoint with its stored key."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

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
    seed: int | None = None
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
    if out[-1]["role"] == "assistant":
        raise InvalidInput("the last message must not be the assistant's: nothing to answer", field="messages")
    return out


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

    def all_pieces():
        yield first
        yield from pieces

    if body.stream:
        def stream():
            yield _chunk(cid, created, body.model, {"role": "assistant", "content": ""})
            for piece in all_pieces():
                if "text" in piece:
                    yield _chunk(cid, created, body.model, {"content": piece["text"]})
                else:
                    yield _chunk(cid, created, body.model, {}, piece["finish_reason"])
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    def collect():
        text, final = [], {}
        for piece in all_pieces():
            if "text" in piece:
                text.append(piece["text"])
            else:
                final = piece
        return "".join(text), final

    text, final = await run_in_threadpool(collect)
    usage = final.get("usage") or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return ChatCompletion(id=cid, created=created, model=body.model, usage=Usage(**usage),
                          choices=[Choice(message=ChoiceMessage(content=text),
                                          finish_reason=final.get("finish_reason", "stop"))])
