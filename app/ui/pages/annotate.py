"""The annotator's view, an app of its own at /annotate/: pick an open study, read the prompt and two
anonymous responses side by side (their order drawn per item), vote left better / tie / right better
/ both bad (a tie, flagged), skip, or undo the last vote; progress and the guidelines stay at hand.
Skipped items are not rated: they are counted apart and offered again once the rest is done.
Keys 1-4, S and U click the buttons (theme.HOTKEYS_JS). Nothing else of the studio is reachable from
here, no model name is ever sent to this page, and Gradio's run history is off, so the browser keeps
no trace of earlier items."""

from __future__ import annotations

import gradio as gr

from app.enums import Side
from app.errors import InvalidInput
from app.services import study_queue as study_service
from app.ui.common import Ui, parse_id, shows_errors
from app.ui.widgets.html import esc, pbar

BUTTONS = [(Side.left, "◀ Left is better", "1", "vote-left", "primary"),
           (Side.tie, "Tie", "2", "vote-tie", "secondary"),
           (Side.right, "Right is better ▶", "3", "vote-right", "primary"),
           (Side.both_bad, "Both bad", "4", "vote-both-bad", "secondary")]


class AnnotatePage:
    def __init__(self, ui: Ui):
        self.ui = ui

    def build(self) -> AnnotatePage:
        self.item = gr.State(None)  # the item on screen (its id only: the server knows the rest)
        self.review = gr.State(False)  # going through the items this annotator skipped
        self.header = gr.HTML()
        with gr.Row(equal_height=True):
            self.study = gr.Dropdown(label="Study", choices=[], scale=3, elem_id="ann-study")
            self.progress = gr.HTML(elem_id="ann-progress")
        with gr.Accordion("Guidelines", open=False, elem_id="ann-guidelines"):
            self.guidelines = gr.Markdown()
        self.prompt = gr.HTML(elem_id="ann-prompt")
        with gr.Row(equal_height=False):
            with gr.Column():
                gr.HTML('<div class="ann-side">Left response</div>')
                self.left = gr.HTML(elem_id="ann-left")
            with gr.Column():
                gr.HTML('<div class="ann-side">Right response</div>')
                self.right = gr.HTML(elem_id="ann-right")
        with gr.Row():
            self.buttons = [gr.Button(f"{label}", variant=variant, elem_id=elem_id, scale=2)
                            for _, label, _, elem_id, variant in BUTTONS]
            self.skip = gr.Button("Skip", elem_id="vote-skip", scale=1)
            self.undo = gr.Button("↶ Undo", elem_id="vote-undo", scale=1)
        self.review_btn = gr.Button("Rate the items I skipped", visible=False, variant="primary",
                                    elem_id="ann-review")
        gr.HTML('<div class="gad-hint">Keys: <span class="kbd">1</span> or <span class="kbd">←</span> left · '
                '<span class="kbd">2</span> tie · <span class="kbd">3</span> or <span class="kbd">→</span> right · '
                '<span class="kbd">4</span> both bad · <span class="kbd">S</span> skip · '
                '<span class="kbd">U</span> undo</div>')
        self.status = gr.HTML(elem_id="ann-status")
        return self

    def item_outputs(self) -> list:
        return [self.item, self.progress, self.guidelines, self.prompt, self.left, self.right, self.status,
                *self.buttons, self.skip, self.review_btn, self.review]

    def wire(self) -> None:
        self.study.input(self.show_next, [self.study], self.item_outputs())
        for (side, *_), button in zip(BUTTONS, self.buttons):
            button.click(self.vote, [self.study, self.item, gr.State(side.value), self.review], self.item_outputs(),
                         show_progress="hidden")
        self.skip.click(self.vote, [self.study, self.item, gr.State(Side.skip.value), self.review],
                        self.item_outputs(), show_progress="hidden")
        self.review_btn.click(self.start_review, [self.study], self.item_outputs(), show_progress="hidden")
        self.undo.click(self.take_back, [self.study], self.item_outputs(), show_progress="hidden")

    # --- handlers -------------------------------------------------------------------------------
    def start(self, request: gr.Request):
        """Page load: the studies open for votes, the first one's next item."""
        with self.ui.session(request, "annotate") as (s, user):
            # a study's name is researchers' free text ("Qwen-GAD vs GPT-4o"): annotators get a neutral title
            studies = [(f"Study {st.id}", st.id) for st in study_service.open_studies_for(s)
                       if (st.settings or {}).get("source") != "chat"]  # chat-arena votes are cast in the chat
            name = user.name
        header = (f'<div class="gad-header"><div class="gad-brand">GAD Studio <small>blind comparison</small></div>'
                  f'<div class="gad-user">{esc(name)}<a href="/logout">Log out</a></div></div>')
        first = studies[0][1] if studies else None
        return [header, gr.update(choices=studies, value=first), *self._render(request, first, None)]

    @shows_errors
    def show_next(self, study_id, request: gr.Request):
        return self._render(request, parse_id(study_id), None)

    @shows_errors
    def start_review(self, study_id, request: gr.Request):
        return self._render(request, parse_id(study_id), "These are the items you skipped. Skip one again to stop.",
                            review=True)

    @shows_errors
    def vote(self, study_id, item_id, side, review=False, request: gr.Request = None):
        if item_id is None:
            raise InvalidInput("there is no item on screen to vote on")
        with self.ui.session(request, "annotate") as (s, user):
            study_service.cast_vote(s, int(item_id), user.id, side)
            s.commit()
        said = {"left": "left better", "right": "right better", "tie": "tie", "both_bad": "both bad",
                "skip": "skipped"}[side]
        # Skipping again while going through skipped items ends that pass (else the same item returns).
        return self._render(request, parse_id(study_id), f"Recorded: {said}. Undo with U.",
                            review=bool(review) and side != "skip")

    @shows_errors
    def take_back(self, study_id, request: gr.Request):
        study_id = parse_id(study_id)
        if study_id is None:
            raise InvalidInput("choose a study first")
        with self.ui.session(request, "annotate") as (s, user):
            item = study_service.undo_last(s, study_id, user.id)
            s.commit()
        if item is None:
            return self._render(request, study_id, "Nothing to undo in this study.")
        return self._show(item, "Your last vote was taken back: vote again on this item.")

    def _render(self, request, study_id: int | None, note: str | None, review: bool = False) -> list:
        if study_id is None:
            return self._empty("No study is open for votes right now.")
        with self.ui.session(request, "annotate") as (s, user):
            item = study_service.next_item(s, study_id, user.id, skipped=review)
            if item is None:
                done = study_service.progress(s, study_id, user.id)
                if done.get("skipped"):
                    return self._empty(f"You have rated {done['done']} items and skipped {done['skipped']}: rate "
                                       f"the skipped ones now, or leave them.", done)
                return self._empty(f"All done: you have rated every item of this study ({done['done']} votes). "
                                   f"Thank you!", done)
        return self._show(item, note, review)

    @staticmethod
    def _progress_line(p: dict, head: str) -> str:
        skipped = (f' · {p["skipped"]} skipped (offered again at the end)' if p.get("skipped") else "")
        return f'<div class="gad-hint">{head}{p["done"]} rated{skipped}</div>'

    def _show(self, item: dict, note: str | None, review: bool = False) -> list:
        p = item["progress"]
        frac = p["done"] / p["total"] if p["total"] else 0
        head = "a skipped item · " if review else f'item {min(p["done"] + p.get("skipped", 0) + 1, p["total"])} ' \
                                                  f'of {p["total"]} · '
        return [item["item_id"], self._progress_line(p, head) + pbar(frac), item.get("guidelines") or "",
                f'<div class="ann-prompt">{esc(item["prompt"])}</div>',
                f'<div class="ann-resp">{esc(item["left"])}</div>',
                f'<div class="ann-resp">{esc(item["right"])}</div>',
                f'<div class="gad-hint">{esc(note)}</div>' if note else "",
                *[gr.update(interactive=True)] * (len(self.buttons) + 1), gr.update(visible=False), review]

    def _empty(self, message: str, progress: dict | None = None) -> list:
        bar = (self._progress_line(progress, "all done · ") + pbar(1.0, done=True)) if progress else ""
        return [None, bar, gr.skip(), f'<div class="okbox">{esc(message)}</div>', "", "", "",
                *[gr.update(interactive=False)] * (len(self.buttons) + 1),
                gr.update(visible=bool(progress and progress.get("skipped"))), False]


def build_app(ui: Ui):
    """The annotators' Gradio app (mounted at /annotate)."""
    page = AnnotatePage(ui)
    with gr.Blocks(title="GAD Studio · annotation", fill_width=True) as blocks:
        page.build()
        page.wire()
        blocks.load(page.start, None, [page.header, page.study, *page.item_outputs()])
    return blocks
