"""Chat: talk to a checkpoint, a base model or a teacher endpoint, answers streamed as they are written;
sampling settings and a system prompt; two or three models side by side answering the same prompt,
optionally blind (names hidden, order shuffled) with a vote that feeds a study ("Chat arena: A vs B"
on the Human evaluation page)."""

from __future__ import annotations

import random
import threading
import time

import gradio as gr

from app.errors import InvalidInput, StudioError
from app.services.arena import record_arena_vote
from app.services.chat import answer, list_models
from app.ui.common import Ui, shows_errors
from app.ui.widgets.html import esc

SLOTS = 3
NONE = "(none)"


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
    def build(self) -> "ChatPage":
        self.order = gr.State([])  # model ids in the order the columns show them (shuffled when blind)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=280):
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
                self.clear = gr.Button("New conversation", size="sm")
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
        ins = {self.message, self.order, self.blind, self.system, self.temperature, self.top_p, self.max_tokens,
               *self.models, *self.bots}
        outs = [self.message, self.order, *self.bots, self.vote_row, self.vote_result]
        # Streaming answers may take a while: several browsers chat at once (the model lock orders them).
        for trigger in (self.send.click, self.message.submit):
            trigger(self.answer, ins, outs, concurrency_limit=None, show_progress="hidden")
        gr.on([m.change for m in self.models] + [self.blind.change, self.clear.click], self.reset,
              [self.blind, *self.models], [self.order, *self.bots, self.vote_row, self.vote_result],
              show_progress="hidden")
        for button, side in zip(self.vote_buttons, ("left", "tie", "right", "both_bad")):
            button.click(self.vote, [self.order, gr.State(side), *self.bots[:2]], [self.vote_row, self.vote_result])

    def load_inputs(self) -> list:
        return self.models

    def load_outputs(self) -> list:
        return self.models

    # --- handlers -------------------------------------------------------------------------------
    def refresh(self, first, second, third, request: gr.Request, preselect: str | None = None):
        """The model pickers from the registry; chosen models stay chosen. `preselect`: the first model,
        chosen for the user (a checkpoint's "Chat" button)."""
        with self.ui.session(request, "chat") as (s, _):
            ids = [e.id for e in list_models(s, self.ui.ctx.settings)]
        first = preselect if preselect in ids else first if first in ids else (ids[0] if ids else None)
        return [gr.update(choices=ids, value=first)] + [gr.update(choices=[NONE] + ids,
                                                                  value=m if m in ids else NONE)
                                                        for m in (second, third)]

    def reset(self, blind, *models):
        chosen = [m for m in models if m and m != NONE]
        labels = self._labels(chosen, blind)
        return [[], *[gr.update(value=[], visible=i < max(1, len(chosen)), label=labels[i] if i < len(labels) else "")
                      for i in range(SLOTS)], gr.update(visible=False), ""]

    @staticmethod
    def _labels(order: list[str], blind: bool) -> list[str]:
        return [f"Model {'ABC'[i]}" if blind else m for i, m in enumerate(order)]

    @shows_errors
    def answer(self, data: dict, request: gr.Request):
        models, bots = [data[m] for m in self.models], [list(data[b] or []) for b in self.bots]
        order, blind, system = data[self.order], data[self.blind], data[self.system]
        temperature, top_p, max_tokens = data[self.temperature], data[self.top_p], data[self.max_tokens]
        message = (data[self.message] or "").strip()
        if not message:
            return
        chosen = [m for m in models if m and m != NONE]
        if not chosen:
            raise InvalidInput("choose a model to chat with", field="model")
        if not order or sorted(order) != sorted(chosen):  # a new conversation: draw the blind order once
            order = list(chosen)
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
            yield ["", order, *shown, vote, ""]
            if finished:
                break
            time.sleep(0.08)

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
