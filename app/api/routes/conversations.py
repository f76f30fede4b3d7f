"""Chat history: the caller's own conversations from the Chat page: list, read, delete, and export
as JSONL in the OpenAI messages format. Another user's conversation answers 404, whatever the
caller's role (a chat is private; see app/services/chat.py)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict

from app.api.deps import DB, Can, IdPath
from app.api.schemas import ERRORS
from app.services import chat as svc

router = APIRouter(prefix="/api/chat/conversations", tags=["chat"], responses=ERRORS)
Chatter = Can("chat")
NDJSON = "application/x-ndjson"


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    title: str
    models: list[str]
    created_at: datetime
    updated_at: datetime


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    position: int
    role: str
    content: str
    model: str | None
    created_at: datetime


class ConversationDetail(ConversationOut):
    messages: list[MessageOut]


class JsonLines(PlainTextResponse):
    """JSONL, documented as such in the OpenAPI schema (PlainTextResponse would say text/plain)."""
    media_type = NDJSON


def _download(lines, filename: str) -> JsonLines:
    # Built whole inside the request: the database session ends with it.
    return JsonLines("".join(lines),
                     headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("", response_model=list[ConversationOut], summary="Your conversations, the most recent first")
def list_conversations(user: Chatter, session: DB, limit: int = Query(100, ge=1, le=1000)) -> list[ConversationOut]:
    return [ConversationOut.model_validate(c) for c in svc.list_conversations(session, user.id, limit)]


# Declared before /{conversation_id}, which would otherwise claim the path.
@router.get("/export", response_class=JsonLines, summary="All your conversations as JSONL",
            description="One line per conversation: {id, model, created_at, title, messages: [{role, content}]}. "
                        "A side-by-side conversation gives one line per model (same id).")
def export_all(user: Chatter, session: DB) -> JsonLines:
    return _download(svc.export_jsonl(session, user.id), "conversations.jsonl")


@router.get("/{conversation_id}", response_model=ConversationDetail, summary="A conversation and its messages")
def get_conversation(conversation_id: IdPath, user: Chatter, session: DB) -> ConversationDetail:
    return ConversationDetail.model_validate(svc.get_conversation(session, user.id, conversation_id))


@router.get("/{conversation_id}/export", response_class=JsonLines, summary="One conversation as JSONL")
def export_one(conversation_id: IdPath, user: Chatter, session: DB) -> JsonLines:
    return _download(svc.export_jsonl(session, user.id, [conversation_id]), f"conversation-{conversation_id}.jsonl")


@router.delete("/{conversation_id}", status_code=204, summary="Delete a conversation")
def delete_conversation(conversation_id: IdPath, user: Chatter, session: DB) -> Response:
    svc.delete_conversation(session, user.id, conversation_id)
    session.commit()
    return Response(status_code=204)
