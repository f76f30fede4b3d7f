"""Chat with anything the studio knows: checkpoints, base models and teacher endpoints.

The registry names every model by a stable, readable id:
    run-12/step-400         a checkpoint's student
    base/<folder> or org/name   a base model (the students of runs, plus GAD_BASE_MODELS)
    endpoint/<name>         a configured teacher/judge endpoint (answers are proxied to it)
Local models stay loaded in a small cache bounded by a memory budget (least recently used goes
first); requests to one model take turns on its lock, so a burst cannot overload the machine.

Chat history: the Chat page keeps each user's conversations (create, append, list, get, delete,
export as JSONL in the OpenAI messages format). A conversation is visible to its owner only: anyone
else, admins included, is told it does not exist (a chat is private, like a mailbox).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.db.models import ChatMessage, Checkpoint, Conversation, Run, utcnow
from app.db.models import Endpoint as EndpointRow
from app.errors import InvalidInput, NotFound, StudioError
from app.services import model_ids
from app.settings import Settings


@dataclass(frozen=True)
class ModelEntry:
    id: str
    kind: str                  # checkpoint | base | endpoint
    path: str | None = None    # local folder or hub id for checkpoint/base
    endpoint_id: int | None = None
    created: int = 0


def _base_id(student: str) -> str:
    path = Path(student)
    return f"base/{path.name}" if student.startswith(("/", ".", "~")) or path.exists() else student


def list_models(session: Session, settings: Settings) -> list[ModelEntry]:
    out: dict[str, ModelEntry] = {}
    # Newest first: the run just trained and its latest checkpoint are what people pick.
    for ck, run_id in session.execute(select(Checkpoint, Checkpoint.run_id)
                                      .order_by(Checkpoint.run_id.desc(), Checkpoint.step.desc())):
        mid = model_ids.model_id(run_id, ck.step)
        out[mid] = ModelEntry(mid, "checkpoint", model_ids.checkpoint_student(ck.path),
                              created=int(ck.created_at.timestamp()))
    students = [c.get("student") for c in session.scalars(select(Run.config))] + list(settings.base_models)
    for student in students:
        if student and _base_id(student) not in out:
            out[_base_id(student)] = ModelEntry(_base_id(student), "base", student)
    for row in session.scalars(select(EndpointRow).order_by(EndpointRow.id)):
        mid = f"endpoint/{row.name}"
        out[mid] = ModelEntry(mid, "endpoint", endpoint_id=row.id, created=int(row.created_at.timestamp()))
    return list(out.values())


def find_model(session: Session, settings: Settings, model_id: str) -> ModelEntry:
    """One model by id: checkpoints and endpoints by a direct lookup, base models from the list."""
    if found := model_ids.parse_model_id(model_id):
        run_id, step = found
        ck = session.scalar(select(Checkpoint).where(Checkpoint.run_id == run_id, Checkpoint.step == step))
        if ck is not None:
            return ModelEntry(model_id, "checkpoint", model_ids.checkpoint_student(ck.path),
                              created=int(ck.created_at.timestamp()))
    elif model_id.startswith("endpoint/"):
        row = session.scalar(select(EndpointRow).where(EndpointRow.name == model_id[9:]))
        if row is not None:
            return ModelEntry(model_id, "endpoint", endpoint_id=row.id, created=int(row.created_at.timestamp()))
    else:
        for entry in list_models(session, settings):
            if entry.id == model_id and entry.kind == "base":
                return entry
    raise NotFound(f"no model {model_id!r}; GET /v1/models lists them", field="model")


class PromptTooLong(InvalidInput):
    """The prompt is over the model's token cap: 400, as OpenAI answers a context overflow."""
    http_status, title = 400, "prompt_too_long"


class Busy(StudioError):
    http_status, exit_code, title = 429, 8, "busy"

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class ModelCache:
    """Loaded models by path, least recently used evicted beyond `budget_bytes`; one lock per model."""

    def __init__(self, budget_bytes: int, allow_remote_code: bool = False):
        self.budget, self.allow_remote_code = budget_bytes, allow_remote_code
        self._models: OrderedDict[str, object] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._waiting: dict[str, int] = {}
        self._guard = threading.Lock()

    def lock(self, path: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(path, threading.Lock())

    def acquire(self, path: str, timeout: float, max_waiting: int | None = None) -> threading.Lock:
        """The model's lock, waited for at most `timeout` seconds: requests to one model take turns. At
        most `max_waiting` requests wait (each waits on a handler thread); more are refused (429) at
        once, so a burst cannot fill the server's thread pool with waiters."""
        lock = self.lock(path)
        if lock.acquire(blocking=False):
            return lock
        with self._guard:
            if max_waiting is not None and self._waiting.get(path, 0) >= max_waiting:
                raise Busy(f"model {path!r} is answering other requests and {max_waiting} more are waiting; "
                           f"try again shortly", retry_after=5)
            self._waiting[path] = self._waiting.get(path, 0) + 1
        try:
            if not lock.acquire(timeout=timeout):
                raise Busy(f"model {path!r} is answering other requests; try again shortly", retry_after=5)
        finally:
            with self._guard:
                self._waiting[path] -= 1
        return lock

    def get(self, path: str):
        """The loaded model (loading it if needed). Call with `lock(path)` held."""
        from gad.llm.generation import load_model

        with self._guard:
            if path in self._models:
                self._models.move_to_end(path)
                return self._models[path]
        if not Path(path).exists() and not self.allow_remote_code and path.count("/") != 1:
            raise InvalidInput(f"model {path!r} is not a local folder", field="model")
        try:
            loaded = load_model(path, trust_remote_code=self.allow_remote_code)
        except OSError as err:  # missing or broken folder, or a hub id with no network
            raise InvalidInput(f"model {path!r} cannot be loaded: {str(err).splitlines()[0]}", field="model") from None
        with self._guard:
            self._models[path] = loaded
            while len(self._models) > 1 and sum(m.bytes for m in self._models.values()) > self.budget:
                self._models.popitem(last=False)  # the least recently used model goes first
        return loaded

    def loaded(self) -> list[str]:
        with self._guard:
            return list(self._models)

    def clear(self) -> None:
        with self._guard:
            self._models.clear()


# --- answering ----------------------------------------------------------------------------------
LOCK_WAIT_SECONDS = 30.0  # a request waits this long for its model's turn, then gets 429
CHARS_PER_TOKEN_MAX = 64  # no tokenizer packs more into one token: longer prompts are refused untokenized


def check_answerable(messages: list[dict]) -> None:
    """The one rule for what can be answered: a conversation that does not end with the assistant's turn."""
    if not messages or messages[-1].get("role") == "assistant":
        raise InvalidInput("the conversation must end with a user (or system) message: nothing to answer",
                           field="messages")


def answer(session: Session, settings: Settings, cache: ModelCache, model_id: str, messages: list[dict], *,
           max_new_tokens: int, temperature: float = 0.7, top_p: float = 1.0, stop: list[str] | None = None,
           seed: int | None = None) -> Iterator[dict]:
    """One answer from any model of the registry, piece by piece: {"text": delta} ... then
    {"finish_reason", "usage"}. /v1/chat/completions and the Chat page both answer through this.
    The session is used only to find the model (before the first piece)."""
    check_answerable(messages)
    entry = find_model(session, settings, model_id)
    # Values a float32 sampler cannot take: a top_p that rounds to 0 keeps no token, a temperature
    # near 0 divides the logits into infinities. Both mean "the most likely token".
    top_p = max(top_p, 1e-6)
    temperature = 0.0 if temperature < 1e-3 else temperature
    params = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, stop=stop, seed=seed)
    if entry.kind == "endpoint":
        from app.services.endpoints import to_gad

        return _proxied(to_gad(session.get(EndpointRow, entry.endpoint_id), settings), messages, params)
    _check_prompt_size(messages, settings.max_prompt_tokens)
    return _local(cache, entry.path, messages, params, settings)


def _check_prompt_size(messages: list[dict], cap_tokens: int) -> None:
    chars = sum(len(m.get("content") or "") for m in messages)
    if chars > cap_tokens * CHARS_PER_TOKEN_MAX:
        raise PromptTooLong(f"the prompt is {chars:,} characters: far over the {cap_tokens:,}-token cap "
                           f"(GAD_MAX_PROMPT_TOKENS)", field="messages")


def context_limits(loaded, cap_tokens: int, prompt_tokens: int, max_new_tokens: int) -> int:
    """max_new_tokens that fits the model's context after the prompt; 400 if the prompt itself does not."""
    context = getattr(getattr(loaded.model, "config", None), "max_position_embeddings", None) or 10**9
    cap = min(cap_tokens, context - 1)
    if prompt_tokens > cap:
        raise PromptTooLong(f"the prompt is {prompt_tokens:,} tokens; this model takes at most {cap:,} (its context "
                           f"is {context:,}; GAD_MAX_PROMPT_TOKENS is {cap_tokens:,})", field="messages")
    return max(1, min(max_new_tokens, context - prompt_tokens))


def _local(cache: ModelCache, path: str, messages: list[dict], params: dict,
           settings: Settings | None = None) -> Iterator[dict]:
    """Pieces from a local model; its turn is held for the whole answer (requests to it queue). Closing
    this iterator ends the generation at the next token and releases the turn (finally)."""
    from gad.llm.generation import prompt_ids, stream_chat

    queue = settings.model_queue if settings is not None else None
    cap_tokens = settings.max_prompt_tokens if settings is not None else 10**9
    lock = cache.acquire(path, timeout=LOCK_WAIT_SECONDS, max_waiting=queue)
    try:
        loaded = cache.get(path)
        new_tokens = context_limits(loaded, cap_tokens, len(prompt_ids(loaded, messages)), params["max_new_tokens"])
        yield from stream_chat(loaded, messages, **{**params, "max_new_tokens": new_tokens})
    finally:
        lock.release()


def _proxied(ep, messages: list[dict], params: dict) -> Iterator[dict]:
    """Pieces from a teacher endpoint through the official SDK, with its stored key (never shown)."""
    import openai

    from app.errors import Upstream
    from app.services.endpoints import redact

    client = openai.OpenAI(base_url=ep.base_url, api_key=ep.api_key(), timeout=ep.timeout, max_retries=2)
    kwargs = dict(model=ep.model, messages=messages, max_tokens=params["max_new_tokens"],
                  temperature=params["temperature"], top_p=params["top_p"], stream=True)
    if params.get("stop"):
        kwargs["stop"] = params["stop"]
    finish, usage = "stop", None
    try:
        for chunk in client.chat.completions.create(**kwargs):
            if getattr(chunk, "usage", None):
                usage = chunk.usage.model_dump()
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    yield {"text": choice.delta.content}
                if choice.finish_reason:
                    finish = choice.finish_reason
    except openai.APIError as err:
        raise Upstream(redact(f"endpoint {ep.base_url}: {type(err).__name__}: {err}", ep)) from None
    yield {"finish_reason": finish, "usage": usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}



# --- chat history -------------------------------------------------------------------------------
ROLES = ("system", "user", "assistant")
TITLE_CHARS = 80   # a conversation's title: the start of its first user message


def title_for(text: str) -> str:
    """A readable one-line title from the first message (whitespace folded, cut at a word)."""
    line = " ".join(text.split())
    if len(line) <= TITLE_CHARS:
        return line or "(empty)"
    return line[:TITLE_CHARS].rsplit(" ", 1)[0].rstrip(" ,.;:") + "…"


def create_conversation(session: Session, user_id: int, models: list[str], title: str) -> Conversation:
    """A new, empty conversation of `user_id` with `models` in the order the page shows them."""
    conversation = Conversation(user_id=user_id, models=list(models), title=title_for(title))
    session.add(conversation)
    session.flush()
    return conversation


def append_message(session: Session, conversation: Conversation, role: str, content: str,
                   model: str | None = None) -> ChatMessage:
    """Add a message at the end of `conversation` (which the caller has checked the user owns)."""
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}", field="role")
    # Touch the conversation first: on PostgreSQL this locks its row, so two tabs appending at
    # once take turns instead of both reading the same last position.
    session.execute(update(Conversation).where(Conversation.id == conversation.id).values(updated_at=utcnow()))
    last = session.scalar(select(func.max(ChatMessage.position)).where(ChatMessage.conversation_id == conversation.id))
    message = ChatMessage(conversation_id=conversation.id, position=(last or 0) + 1, role=role, content=content,
                          model=model if role == "assistant" else None)
    session.add(message)
    session.flush()
    session.refresh(conversation)
    return message


def list_conversations(session: Session, user_id: int, limit: int = 100) -> list[Conversation]:
    """The user's conversations, the most recently active first."""
    return list(session.scalars(select(Conversation).where(Conversation.user_id == user_id)
                                .order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit)))


def get_conversation(session: Session, user_id: int, conversation_id: int) -> Conversation:
    """The conversation if `user_id` owns it. Anyone else gets NotFound, not Forbidden: whether
    someone else's conversation exists is not theirs to learn either."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.user_id != user_id:
        raise NotFound(f"no conversation {conversation_id}")
    return conversation


def delete_conversation(session: Session, user_id: int, conversation_id: int) -> None:
    session.delete(get_conversation(session, user_id, conversation_id))
    session.flush()


def threads(conversation: Conversation) -> dict[str, list[dict]]:
    """Each model's side of the conversation as OpenAI messages: the shared system and user
    messages, and that model's own answers. A one-model chat has one thread."""
    out: dict[str, list[dict]] = {}
    models = list(conversation.models) or sorted({m.model for m in conversation.messages if m.model})
    for model in models:
        out[model] = [{"role": m.role, "content": m.content} for m in conversation.messages
                      if m.role != "assistant" or m.model == model]
    return out


def export_records(conversation: Conversation) -> list[dict]:
    """The conversation as export records {"id", "model", "created_at", "title", "messages"}: one for a
    one-model chat; a side-by-side chat gives one per model (same id), so each record is a valid
    OpenAI conversation."""
    return [{"id": conversation.id, "model": model, "created_at": conversation.created_at.isoformat(),
             "title": conversation.title, "messages": messages}
            for model, messages in threads(conversation).items()]


def export_jsonl(session: Session, user_id: int, conversation_ids: list[int] | None = None) -> Iterator[str]:
    """The user's conversations (all, or those of `conversation_ids`) as JSON lines, oldest first,
    one line per conversation (per model of a side-by-side one). Lines end with a newline."""
    if conversation_ids is None:
        found = list(session.scalars(select(Conversation).where(Conversation.user_id == user_id)
                                     .order_by(Conversation.created_at, Conversation.id)))
    else:
        found = [get_conversation(session, user_id, cid) for cid in conversation_ids]
    for conversation in found:
        for record in export_records(conversation):
            yield json.dumps(record, ensure_ascii=False) + "\n"
