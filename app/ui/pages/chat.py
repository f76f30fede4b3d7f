"""Chat: talk to a checkpoint, a base model or a teacher endpoint, answers streamed as they are written;
sampling settings and a system prompt; two or three models side by side answering the same prompt,
optionally blind (names hidden, order shuffled) with a vote that feeds a study ("Chat arena: A vs B"
on the Human evaluation page).

Each exchange is saved to the current conversation (app/services/chat.py). The Conversations list
(newest first) resumes one when picked: its models, system prompt and every column's history come
back, and the next message continues it. "New conversation" starts another; "Export" downloads all of
the user's conversations as JSONL. The list names no model, so a blind comparison stays blind."""

from __future__ import annotations

import random
import tempfile
import threading
import time
from pathlib import Path

import gradio as gr

from app.errors import InvalidInput, NotFound, StudioError
from app.services import chat as chat_service
from app.services.arena import record_arena_vote
from app.services.chat import answer, list_models
from app.ui.common import Ui, shows_errors
from app.ui.widgets.html import esc

SLOTS = 3
NONE = "(none)"
LISTED = 100  # conversations offered in the list (the API lists and exports every one)


# The chat renders Markdown (the models write it) and sanitises HTML; the user's own words must show as
# typed, so every ASCII punctuation mark of theirs is backslash-escaped (Markdown then shows it literally,
# as text, never as HTML) and the escape is undone before the text goes to a model or a study.
_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def as_shown(text: str) -> str:
    """The user's message as the chat displays it: literally."""
    return "".join("\\" + c if c in _PUNCT else c for c in text)


def as_typed(text: str) -> str:
    """Undo `as_shown`."""
    out, chars = [], iter(text)
    for c in chars:
        out.append(next(chars, "") if c == "\\" else c)
    return "".join(out)


def said(message: dict) -> str:
    """A chat message's text as its author wrote it."""
    text = text_of(message["content"])
    return as_typed(text) if message["role"] == "user" else text


def text_of(content) -> str:
    """Gradio 6 hands message content back as a list of parts; the models want plain text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    if isinstance(content, dict):
        return content.get("text", "")
    return "" if content is None else str(content)


class ChatPage:
    def __init__(self, ui: Ui):
        self.ui = ui

    # --- layout ---------------------------------------------------------------------------------
    def build(self) -> ChatPage:
        self.order = gr.State([])  # model ids in the order the columns show them (shuffled when blind)
        self.conversation = gr.State(None)  # the id of the conversation being written (None: not saved yet)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=280):
                self.history = gr.Dropdown(label="Conversations", choices=[], value=None, elem_id="chat-history",
                                           info="yours, the most recent first; pick one to resume it")
                with gr.Row():
                    self.clear = gr.Button("New conversation", size="sm", elem_id="chat-new")
                    self.export_btn = gr.Button("Export", size="sm", elem_id="chat-export")
                self.export_file = gr.File(label="Conversations (JSONL)", visible=False, interactive=False,
                                           elem_id="chat-export-file")
                self.models = [gr.Dropdown(label=f"Model {i + 1}", choices=[], elem_id=f"chat-model-{i + 1}",
                                           info="checkpoint, base model or endpoint" if i == 0 else
                                           "side by side: a second (and third) model answers too")
                               for i in range(SLOTS)]
                self.blind = gr.Checkbox(label="Blind comparison", value=False, elem_id="chat-blind",
                                         info="hide the names and shuffle the columns; vote afterwards")
                self.system = gr.Textbox(label="System prompt", lines=3, placeholder="optional")
                self.temperature = gr.Slider(0, 2, value=0.7, step=0.05, label="Temperature")
                self.top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="Top-p")
                self.max_tokens = gr.Slider(16, 4096, value=512, step=16, label="Max new tokens",
                                            elem_id="chat-max-tokens")
            with gr.Column(scale=4):
                with gr.Row(equal_height=True):
                    self.bots = [gr.Chatbot(label=f"Model {i + 1}", height=460, visible=i == 0, buttons=["copy"],
                                            elem_id=f"chat-bot-{i + 1}", elem_classes=["chatcol"])
                                 for i in range(SLOTS)]
                with gr.Row(equal_height=True):
                    self.message = gr.Textbox(show_label=False, placeholder="Ask something… (Enter sends)", scale=6,
                                              elem_id="chat-input", autofocus=True)
                    self.send = gr.Button("Send", variant="primary", scale=1, min_width=100, elem_id="chat-send")
                with gr.Row(visible=False) as self.vote_row:
                    self.vote_buttons = [gr.Button(label, size="sm", elem_id=f"chat-vote-{side}")
                                         for side, label in (("left", "◀ Left is better"), ("tie", "Tie"),
                                                             ("right", "Right is better ▶"),
                                                             ("both_bad", "Both bad"))]
                self.vote_result = gr.HTML(elem_id="chat-vote-result")
        return self

    # --- wiring ---------------------------------------------------------------------------------
    def wire(self) -> None:
        # Many inputs: the handler takes them as one {component: value} dict (Gradio passes a set so).
        ins = {self.message, self.order, self.conversation, self.blind, self.system, self.temperature, self.top_p,
               self.max_tokens, *self.models, *self.bots}
        outs = [self.message, self.order, self.conversation, self.history, *self.bots, self.vote_row,
                self.vote_result]
        # Streaming answers may take a while: several browsers chat at once (the model lock orders them).
        for trigger in (self.send.click, self.message.submit):
            trigger(self.answer, ins, outs, concurrency_limit=None, show_progress="hidden")
        cleared = [self.conversation, self.history, self.order, *self.bots, self.vote_row, self.vote_result]
        # Other models start a new conversation; a resumed conversation sets the pickers to its own models
        # (a change too), which must not clear it: `reset_if_changed` compares with the columns' models.
        gr.on([m.change for m in self.models], self.reset_if_changed, [self.order, self.blind, *self.models],
              cleared, show_progress="hidden")
        gr.on([self.blind.input, self.clear.click], self.reset, [self.blind, *self.models], cleared,
              show_progress="hidden")
        self.history.input(self.resume, [self.history, self.blind],
                           [self.conversation, self.order, self.system, *self.models, *self.bots, self.vote_row,
                            self.vote_result], show_progress="hidden")
        self.export_btn.click(self.export, None, [self.export_file])
        for button, side in zip(self.vote_buttons, ("left", "tie", "right", "both_bad")):
            button.click(self.vote, [self.order, gr.State(side), *self.bots[:2]], [self.vote_row, self.vote_result])

    def load_inputs(self) -> list:
        return self.models

    def load_outputs(self) -> list:
        return [*self.models, self.history]

    # --- handlers -------------------------------------------------------------------------------
    def refresh(self, first, second, third, request: gr.Request, preselect: str | None = None):
        """The model pickers from the registry; chosen models stay chosen. `preselect`: the first model,
        chosen for the user (a checkpoint's "Chat" button)."""
        with self.ui.session(request, "chat") as (s, user):
            ids = [e.id for e in list_models(s, self.ui.ctx.settings)]
            listed = self._listed(s, user.id)
        first = preselect if preselect in ids else first if first in ids else (ids[0] if ids else None)
        return [gr.update(choices=ids, value=first)] + [gr.update(choices=[NONE] + ids,
                                                                  value=m if m in ids else NONE)
                                                        for m in (second, third)] + [gr.update(choices=listed)]

    @staticmethod
    def _listed(session, user_id: int) -> list[tuple[str, int]]:
        """The Conversations list: title and time, newest first. No model names: they would unblind."""
        return [(f"{c.title} · {c.updated_at:%d %b %H:%M}", c.id)
                for c in chat_service.list_conversations(session, user_id, LISTED)]

    def reset(self, blind, *models):
        """A new conversation: empty columns, nothing saved until the first answer."""
        chosen = [m for m in models if m and m != NONE]
        labels = self._labels(chosen, blind)
        return [None, gr.update(value=None), [],
                *[gr.update(value=[], visible=i < max(1, len(chosen)), label=labels[i] if i < len(labels) else "")
                  for i in range(SLOTS)], gr.update(visible=False), ""]

    def reset_if_changed(self, order, blind, *models):
        chosen = [m for m in models if m and m != NONE]
        if order and sorted(order) == sorted(chosen):
            return [gr.skip()] * (5 + SLOTS)  # the columns already show these models (a resumed conversation)
        return self.reset(blind, *models)

    @shows_errors
    def resume(self, conversation_id, blind, request: gr.Request):
        """Show a saved conversation as it was left: its models in their columns, its system prompt and
        each column's history; the next message continues it."""
        if conversation_id is None:
            return [gr.skip()] * (5 + 2 * SLOTS)
        with self.ui.session(request, "chat") as (s, user):
            conversation = chat_service.get_conversation(s, user.id, int(conversation_id))
            ids = [e.id for e in list_models(s, self.ui.ctx.settings)]
            order = list(conversation.models)[:SLOTS]
            threads = chat_service.threads(conversation)
            systems = [m.content for m in conversation.messages if m.role == "system"]
            conversation_id = conversation.id
        labels = self._labels(order, blind)
        # A model that is gone (a deleted checkpoint) still shows; answering with it says it is gone.
        pickers = [gr.update(choices=ids + [m for m in order[:1] if m not in ids],
                             value=order[0] if order else None)]
        pickers += [gr.update(choices=[NONE] + ids + [m for m in order[i:i + 1] if m not in ids],
                              value=order[i] if i < len(order) else NONE) for i in (1, 2)]
        bots = [gr.update(value=[{"role": m["role"], "content": as_shown(m["content"]) if m["role"] == "user"
                                  else m["content"]} for m in threads.get(order[i], []) if m["role"] != "system"],
                          visible=True, label=labels[i]) if i < len(order) else gr.update(value=[], visible=False)
                for i in range(SLOTS)]
        return [conversation_id, order, systems[-1] if systems else "", *pickers, *bots, gr.update(visible=False), ""]

    @shows_errors
    def export(self, request: gr.Request):
        with self.ui.session(request, "chat") as (s, user):
            text = "".join(chat_service.export_jsonl(s, user.id))
        if not text:
            raise InvalidInput("no conversation to export yet: send a message first")
        # A fresh temporary folder: Gradio serves files from the system's temp folder, and the export is
        # handed to this browser only.
        path = Path(tempfile.mkdtemp(prefix="gad-chat-")) / "conversations.jsonl"
        path.write_text(text, encoding="utf-8")
        return gr.update(value=str(path), visible=True)

    def _save(self, conversation_id, order: list[str], system: str, message: str, replies: list[str | None],
              request: gr.Request) -> tuple[int, list]:
        """Store one exchange (the user's message, then each model's answer that arrived whole) in the
        conversation, creating it on the first exchange; returns its id and the refreshed list."""
        with self.ui.session(request, "chat") as (s, user):
            conversation = None
            if conversation_id is not None:
                try:
                    conversation = chat_service.get_conversation(s, user.id, int(conversation_id))
                except NotFound:  # deleted meanwhile (through the API): this exchange starts a new one
                    conversation = None
            if conversation is None:
                conversation = chat_service.create_conversation(s, user.id, order, message)
            systems = [m.content for m in conversation.messages if m.role == "system"]
            if system.strip() and (not systems or systems[-1] != system):
                chat_service.append_message(s, conversation, "system", system)  # set, or changed since
            chat_service.append_message(s, conversation, "user", message)
            for model, reply in zip(order, replies):
                if reply:
                    chat_service.append_message(s, conversation, "assistant", reply, model)
            s.commit()
            return conversation.id, self._listed(s, user.id)

    @staticmethod
    def _labels(order: list[str], blind: bool) -> list[str]:
        return [f"Model {'ABC'[i]}" if blind else m for i, m in enumerate(order)]

    @shows_errors
    def answer(self, data: dict, request: gr.Request):
        models, bots = [data[m] for m in self.models], [list(data[b] or []) for b in self.bots]
        order, blind, system = data[self.order], data[self.blind], data[self.system] or ""
        conversation_id = data[self.conversation]
        temperature, top_p, max_tokens = data[self.temperature], data[self.top_p], data[self.max_tokens]
        message = (data[self.message] or "").strip()
        if not message:
            return
        chosen = [m for m in models if m and m != NONE]
        if not chosen:
            raise InvalidInput("choose a model to chat with", field="model")
        if not order or sorted(order) != sorted(chosen):  # a new conversation: draw the blind order once
            order, conversation_id = list(chosen), None
            if blind:
                random.shuffle(order)
        with self.ui.session(request, "chat"):
            pass  # checks the role before any model is loaded
        params = dict(max_new_tokens=int(max_tokens), temperature=float(temperature), top_p=float(top_p))
        texts, errors, done = [""] * len(order), [None] * len(order), [False] * len(order)

        def worker(i: int, model_id: str, history: list[dict]):
            convo = ([{"role": "system", "content": system}] if system and system.strip() else []) + \
                    [{"role": m["role"], "content": said(m)} for m in history] + \
                    [{"role": "user", "content": message}]
            try:
                with self.ui.ctx.sessions() as s:
                    pieces = answer(s, self.ui.ctx.settings, self.ui.models, model_id, convo, **params)
                for piece in pieces:
                    if "text" in piece:
                        texts[i] += piece["text"]
            except StudioError as err:
                errors[i] = err.message
            except Exception as err:  # shown in that column, so one failing model does not hide the others
                errors[i] = f"{type(err).__name__}: {err}"
            finally:
                done[i] = True

        threads = [threading.Thread(target=worker, args=(i, m, bots[i]), daemon=True) for i, m in enumerate(order)]
        for t in threads:
            t.start()
        labels = self._labels(order, blind)
        base = [bots[i] + [{"role": "user", "content": as_shown(message)}] for i in range(len(order))]
        while True:
            finished = all(done)
            shown = []
            for i in range(SLOTS):
                if i >= len(order):
                    shown.append(gr.update(visible=False))
                    continue
                reply = texts[i] or ("" if finished else "…")
                if errors[i]:
                    reply = (reply + "\n\n" if reply else "") + f"⚠ {errors[i]}"
                shown.append(gr.update(value=base[i] + [{"role": "assistant", "content": reply}], visible=True,
                                       label=labels[i]))
            vote = gr.update(visible=finished and blind and len(order) == 2 and not any(errors))
            if not finished:
                yield ["", order, gr.skip(), gr.skip(), *shown, vote, ""]
                time.sleep(0.08)
                continue
            # Saved once every model has answered; an answer cut short by an error is not kept.
            conversation_id, listed = self._save(conversation_id, order, system, message,
                                                 [None if errors[i] else texts[i] for i in range(len(order))],
                                                 request)
            yield ["", order, conversation_id, gr.update(choices=listed, value=conversation_id), *shown, vote, ""]
            break

    @shows_errors
    def vote(self, order, side, left, right, request: gr.Request):
        if len(order or []) != 2:
            raise InvalidInput("a blind vote compares exactly two models")
        last = [self._last_turn(left), self._last_turn(right)]
        if not all(last):
            raise InvalidInput("both models must have answered before you vote")
        with self.ui.session(request, "studies") as (s, user):
            study = record_arena_vote(s, user.id, list(order), last[0][0], [last[0][1], last[1][1]], side)
            s.commit()
            name = study.name
        return gr.update(visible=False), (f'<div class="okbox">Vote recorded in the study “{esc(name)}”. '
                                          f'Left was <b>{esc(order[0])}</b>, right was <b>{esc(order[1])}</b>.</div>')

    @staticmethod
    def _last_turn(history) -> tuple[str, str] | None:
        history = list(history or [])
        if len(history) < 2 or history[-1]["role"] != "assistant":
            return None
        return said(history[-2]), said(history[-1])
