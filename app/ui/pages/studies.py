"""Human evaluation (the researcher's side): create a blind side-by-side study (two models, a test set,
items, annotators per item, guidelines), watch its items being generated, decide on responses that
give their model away ("As Qwen...", "I am GPT-4"; flagged when the study is built: drop or keep
them), open and close it; results: win/tie/loss bars with 95% intervals like the paper's Figure 3,
per-annotator counts, agreement (Fleiss' kappa), export; with an LLM judge, how often it disagrees with itself
and with the humans, and a queue that puts those items first; the judge's cost cap (its job pauses before a
verdict that could pass it; resumed here under a raised cap). The study's job panel follows the job by
server push (app/ui/live.py). Annotators vote at /annotate/."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import gradio as gr

from app.enums import JobKind, RunStatus, StudyStatus
from app.errors import InvalidInput
from app.services import endpoints as ep_service
from app.services import jobs as job_service
from app.services import studies as study_service
from app.services import study_results as results_service
from app.services.chat import list_models
from app.services.costs import project_study
from app.services.datasets import dataset_options
from app.services.run_views import checkpoint_options
from app.ui.common import LIVE, Followers, Ui, parse_id, shows_errors
from app.ui.live import follow_job, follow_value
from app.ui.widgets import charts
from app.ui.widgets.html import badge, cards, esc, table, when
from app.ui.widgets.jobs import is_live, job_panel, projection_panel

GUIDELINES = ("Read the prompt, then both responses. Choose the one that follows the instruction better: correct, "
              "helpful, clear and complete. Length alone is not quality. Choose Tie when they are about equally "
              "good, and Both bad when neither is acceptable.\n\nKeys: 1 or ← left better · 2 tie · 3 or → right "
              "better · 4 both bad · S skip · U undo.")


class StudiesPage:
    def __init__(self, ui: Ui):
        self.ui = ui
        self._followers = Followers()

    # --- layout ---------------------------------------------------------------------------------
    def build(self) -> StudiesPage:
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=380):
                with gr.Accordion("New study", open=True):
                    self.name = gr.Textbox(label="Name", placeholder="e.g. GAD vs SeqKD, Qwen 1.5B",
                                           elem_id="study-name")
                    with gr.Row():
                        self.model_a = gr.Dropdown(label="Model A", choices=[], allow_custom_value=True,
                                                   elem_id="study-model-a",
                                                   info="a checkpoint, a base model, or a responses file path")
                        self.model_b = gr.Dropdown(label="Model B", choices=[], allow_custom_value=True,
                                                   elem_id="study-model-b")
                    self.dataset = gr.Dropdown(label="Prompts (the dataset's test split)", choices=[],
                                               elem_id="study-dataset")
                    with gr.Row():
                        self.n_items = gr.Number(label="Items", value=50, precision=0, minimum=1, elem_id="study-items")
                        self.per_item = gr.Number(label="Annotators per item", value=1, precision=0, minimum=1,
                                                  maximum=20, info="2+ gives an agreement figure")
                        self.max_tokens = gr.Number(label="Max new tokens", value=256, precision=0, minimum=1)
                    self.guidelines = gr.Textbox(label="Guidelines for annotators", value=GUIDELINES, lines=5)
                    with gr.Row():  # active annotation (app.services.study_judge); annotators never see the judge
                        self.judge = gr.Dropdown(label="Judge endpoint (optional)", choices=[], elem_id="study-judge",
                                                 info="rates every item in both orders when the items are built")
                        self.queue_order = gr.Radio(
                            [("Fewest votes first", "standard"), ("Judge disagreements first", "disagreement")],
                            value="standard", label="Queue order", elem_id="study-queue-order",
                            info="first: items where the judge's two orders, or judge and humans, disagree")
                    # Before the launch, as for collections and evaluations: 0 unless a judge rates the items.
                    self.projection = gr.HTML(projection_panel(project_study()), elem_id="study-projection")
                    self.cap = gr.Number(label="Judge's cost cap, USD (optional)", value=None, minimum=0,
                                         elem_id="study-cap", info="empty or 0: no cap. The judge pauses before a "
                                                                   "verdict that could pass it; resume it with a "
                                                                   "raised cap on the study")
                    self.create = gr.Button("Create study", variant="primary", elem_id="study-create")
                    self.created = gr.HTML()
            with gr.Column(scale=3, min_width=460):
                gr.HTML('<div class="gad-h">Studies</div><div class="gad-hint">Annotators vote at '
                        '<a href="/annotate/" target="_blank">/annotate/</a>; they see only the prompt and two '
                        'anonymous responses.</div>')
                self.listing = gr.HTML(elem_id="studies-table")
                self.pick = gr.Dropdown(label="Open a study", choices=[], elem_id="study-pick")
        with gr.Column(visible=False) as self.detail:
            self.header = gr.HTML(elem_id="study-header")
            self.job = gr.HTML(elem_id="study-job")
            with gr.Row(visible=False, equal_height=True) as self.resume_row:  # a judge paused by its cost cap
                self.resume_cap = gr.Number(label="New cost cap, USD (empty or 0: no cap)", value=None, minimum=0,
                                            scale=1, elem_id="study-resume-cap")
                self.resume = gr.Button("Resume the paused judge with this cap", scale=1, elem_id="study-resume")
            with gr.Column(visible=False) as self.review:
                self.flagged = gr.HTML(elem_id="study-flagged")
                with gr.Row():
                    self.drop = gr.Button("Drop the flagged items and open the study", variant="primary",
                                          elem_id="study-drop")
                    self.keep = gr.Button("Keep them and open the study", elem_id="study-keep")
            with gr.Row():
                self.open_btn = gr.Button("Open for votes", size="sm", visible=False, elem_id="study-open")
                self.close_btn = gr.Button("Close", size="sm", visible=False, elem_id="study-close")
                self.refresh_btn = gr.Button("↻ Refresh results", size="sm")
            self.results = gr.HTML(elem_id="study-results")
            self.chart = gr.Plot(show_label=False, elem_id="study-chart")
            with gr.Row():
                self.export_csv = gr.Button("Export votes (CSV)", size="sm")
                self.export_jsonl = gr.Button("Export votes (JSONL)", size="sm")
                self.export_file = gr.File(label="Export", visible=False, interactive=False)
        # A new value starts the follower of the study's live job (`follow`): set by every redraw of a study.
        self.following = gr.State(None)
        return self

    # --- wiring ---------------------------------------------------------------------------------
    def detail_outputs(self) -> list:
        return [self.detail, self.header, self.job, self.resume_row, self.review, self.flagged, self.open_btn,
                self.close_btn, self.results, self.chart, self.listing, self.following]

    def wire(self) -> None:
        self.create.click(self.submit, [self.name, self.model_a, self.model_b, self.dataset, self.n_items,
                                        self.per_item, self.max_tokens, self.guidelines, self.judge,
                                        self.queue_order, self.cap],
                          [self.created, self.listing, self.pick]).success(
            self.open_study, [self.pick], self.detail_outputs())
        gr.on([self.judge.change, self.n_items.change, self.max_tokens.change], self.project,
              [self.judge, self.n_items, self.max_tokens], [self.projection])
        gr.on([self.pick.input, self.refresh_btn.click], self.open_study, [self.pick], self.detail_outputs())
        # The follower's outputs: the detail without `following` (writing it would start another follower).
        self.following.change(self.follow, [self.following], self.detail_outputs()[:-1], **LIVE)
        self.resume.click(self.resume_judge, [self.pick, self.resume_cap], self.detail_outputs())
        for button, arg in ((self.drop, True), (self.keep, False)):
            button.click(self.decide, [self.pick, gr.State(arg)], self.detail_outputs())
        for button, status in ((self.open_btn, StudyStatus.open), (self.close_btn, StudyStatus.closed)):
            button.click(self.set_status, [self.pick, gr.State(status.value)], self.detail_outputs())
        for button, fmt in ((self.export_csv, "csv"), (self.export_jsonl, "jsonl")):
            button.click(self.export, [self.pick, gr.State(fmt)], [self.export_file])

    def load_inputs(self) -> list:
        return [self.dataset, self.pick]

    def load_outputs(self) -> list:
        return [self.model_a, self.model_b, self.dataset, self.listing, self.pick, self.judge]

    # --- handlers -------------------------------------------------------------------------------
    def refresh(self, dataset, selected, request: gr.Request):
        """Pickers and the list from the database; the chosen dataset and study stay chosen."""
        dataset, selected = parse_id(dataset), parse_id(selected)
        with self.ui.session(request, "studies") as (s, _):
            models = [c["model_id"] for c in checkpoint_options(s)]
            models += [e.id for e in list_models(s, self.ui.ctx.settings) if e.kind == "base"]
            datasets = [(o["label"], o["id"]) for o in dataset_options(s)]
            views = [study_service.study_view(s, st) for st in study_service.list_studies(s)]
            judges = [("none", "")] + [(f"{e.name} ({e.model})", e.id) for e in ep_service.list_endpoints(s)]
        listing = self._table(views)
        if dataset not in {d[1] for d in datasets}:
            dataset = datasets[0][1] if datasets else None
        if selected not in {v["id"] for v in views}:
            selected = None
        return [gr.update(choices=models), gr.update(choices=models), gr.update(choices=datasets, value=dataset),
                listing, gr.update(choices=[(f'#{v["id"]} {v["name"]}', v["id"]) for v in views], value=selected),
                gr.update(choices=judges)]

    def _listing(self, request) -> str:
        with self.ui.session(request, "studies") as (s, _):
            return self._table([study_service.study_view(s, st) for st in study_service.list_studies(s)])

    @staticmethod
    def _table(views: list[dict]) -> str:
        rows = [[v["id"], esc(v["name"]), badge(v["status"]), esc(v["model_a"]), esc(v["model_b"]), v["items"],
                 v["flagged"]] for v in views]
        return table(["#", "name", "status", "model A", "model B", "items", "flagged"], rows, num={0, 5, 6},
                     raw={1, 2, 3, 4}, empty="No studies yet.")

    def project(self, judge, n_items, max_tokens, request: gr.Request) -> str:
        """What the study would pay: nothing, or its judge's verdicts in both orders."""
        judge_id = parse_id(judge)
        if judge_id is None:
            return projection_panel(project_study())
        with self.ui.session(request, "studies") as (s, _):
            return projection_panel(project_study(s, self.ui.ctx.settings, judge_endpoint_id=judge_id,
                                                  n_items=int(n_items or 50), max_new_tokens=int(max_tokens or 256)))

    @shows_errors
    def submit(self, name, model_a, model_b, dataset, n_items, per_item, max_tokens, guidelines, judge, queue_order,
               cap, request: gr.Request):
        with self.ui.session(request, "studies") as (s, user):
            if parse_id(dataset) is None:
                raise InvalidInput("choose the dataset whose test prompts the models answer", field="dataset_id")
            study, job = study_service.create_study(
                s, name=(name or "").strip(), model_a=study_service.model_choice(s, self.ui.ctx.settings, model_a),
                model_b=study_service.model_choice(s, self.ui.ctx.settings, model_b), dataset_id=parse_id(dataset),
                n_items=int(n_items) if n_items else None, annotators_per_item=int(per_item or 1),
                guidelines=guidelines or "", max_new_tokens=int(max_tokens or 256), user_id=user.id,
                judge_endpoint_id=parse_id(judge), queue_order=queue_order or "standard",
                max_cost_usd=float(cap) if cap else None)  # the empty box reads 0: no cap
            s.commit()
            study_id, job_id = study.id, job.id
        self.ui.ctx.enqueue(JobKind.study, job_id)
        _a, _b, _d, listing, pick, _j = self.refresh(dataset, study_id, request)
        return (f'<div class="okbox">Study #{study_id} created: both models are answering its prompts.</div>',
                listing, pick)

    @shows_errors
    def open_study(self, study_id, request: gr.Request):
        """The study's detail, and a follower of its job while the job is live."""
        study_id = parse_id(study_id)
        if study_id is None:
            return [gr.update(visible=False)] + [gr.skip()] * (len(self.detail_outputs()) - 2) + [None]
        outputs, live, job_id = self._detail(study_id, request)
        return outputs + [follow_value(job_id, live, study_id=study_id)]

    async def follow(self, following, request: gr.Request):
        """Push the study's detail while its job (items, then the judge's verdicts) runs (app/ui/live.py)."""
        async for outputs in follow_job(self.ui.ctx.sessions, self._followers, following, request,
                                        lambda f: self._detail(f["study_id"], request)[:2]):
            yield outputs

    @shows_errors
    def _detail(self, study_id: int, request: gr.Request) -> tuple[list, bool, int | None]:
        """The detail outputs (all but `following`), whether the study's job is live, and its id."""
        with self.ui.session(request, "studies") as (s, _):
            study = study_service.get_study(s, study_id)
            view = study_service.study_view(s, study)
            judged = (study.settings or {}).get("judge_endpoint_id") is not None
            job = study_service.study_job(s, study_id)
            job_view = job_service.job_view(job) if job else None
            flagged = study_service.flagged_items(s, study_id) if view["flagged"] else []
            results = results_service.study_results(s, study_id)
        live, paused = is_live(job_view), bool(job_view) and job_view["status"] == RunStatus.paused
        header = (f'<div style="display:flex;gap:10px;align-items:center"><span class="gad-h">#{view["id"]} '
                  f'{esc(view["name"])}</span>{badge(view["status"])}<span class="gad-hint">created '
                  f'{esc(when(view["created_at"]))}</span></div>'
                  + cards([("model A", view["model_a"]), ("model B", view["model_b"]), ("items", view["items"]),
                           ("annotators per item", view["annotators_per_item"]), ("flagged", view["flagged"])]))
        # The job: the models' answers while the study is a draft, then the judge's verdicts (if it has one).
        shown = view["status"] == StudyStatus.draft or live or paused or bool(job_view and job_view.get("error"))
        panel = job_panel(job_view, "judge" if judged and view["status"] != StudyStatus.draft else "generation")
        if paused:
            panel += ('<div class="gad-hint">The study takes votes meanwhile; the judge\'s verdicts, and a queue '
                      'ordered by its disagreements, come once it has judged every item.</div>')
        return [gr.update(visible=True), header, panel if shown else "", gr.update(visible=paused),
                gr.update(visible=view["status"] == StudyStatus.review), self._flagged(flagged, view["status"]),
                gr.update(visible=view["status"] == StudyStatus.closed),
                gr.update(visible=view["status"] == StudyStatus.open), self._results(results),
                charts.study_bars([results]), self._listing(request)], live, job_view and job_view["id"]

    @shows_errors
    def resume_judge(self, study_id, cap, request: gr.Request):
        """The study's judge, paused by its cost cap, queued again under the cap typed next to the button."""
        study_id = parse_id(study_id)
        if study_id is None:
            raise InvalidInput("open a study first")
        with self.ui.session(request, "studies") as (s, _):
            job = study_service.study_job(s, study_id)
            if job is None or job.status != RunStatus.paused:
                raise InvalidInput("this study's judge is not paused", field="max_cost_usd")
            job_id = job_service.resume_job(s, job.id, float(cap) if cap else None).id  # empty (0): no cap
            s.commit()
        self.ui.ctx.enqueue(JobKind.study, job_id)  # after the commit: the worker must find it queued
        return self.open_study(study_id, request)

    @staticmethod
    def _flagged(items: list[dict], status: str) -> str:
        if not items:
            return ""
        rows = []
        for it in items:
            def mark(text, leaks=it["leaks"]):
                out = esc(text[:600])
                for phrase in leaks:
                    out = re.sub(re.escape(esc(phrase)), lambda m: f'<span class="leak">{m.group(0)}</span>', out,
                                 flags=re.IGNORECASE)
                return out
            rows.append([it["position"], esc(", ".join(it["leaks"])), mark(it["response_a"]), mark(it["response_b"]),
                         "dropped" if it["dropped"] else "kept"])
        head = (f'<div class="note"><b>{len(items)} item(s) contain responses that give their model away.</b> '
                f'Annotators who recognise a model are no longer blind: drop these items, or keep them.</div>'
                if status == StudyStatus.review else '<div class="lbl">items flagged when the study was built</div>')
        return head + table(["item", "giveaway", "response A", "response B", "decision"], rows, raw={1, 2, 3})

    @staticmethod
    def _results(r: dict) -> str:
        def pct(key):
            rate, ci = r.get(f"{key}_rate"), r.get(f"{key}_ci")
            if rate is None:
                return "–", None
            return f"{100 * rate:.0f}%", f"95% CI {100 * ci[0]:.0f}–{100 * ci[1]:.0f}%" if ci else None
        kappa = r["agreement"]["fleiss_kappa"]
        head = cards([("votes", r["votes"]), (f"{r['model_a']} wins", *pct("win")), ("tie", *pct("tie")),
                      (f"{r['model_b']} wins", *pct("loss")), ("both bad (in ties)", r["both_bad"]),
                      ("skipped", r["skipped"]),
                      ("Fleiss' kappa", f"{kappa:.2f}" if kappa is not None else "–",
                       f'{r["agreement"]["items"]} fully rated items' if r["agreement"]["annotators_per_item"] > 1
                       else "needs 2+ annotators per item")])
        per = table(["annotator", "A wins", "tie", "B wins", "skipped"],
                    [[a["annotator"], a["win"], a["tie"], a["loss"], a["skipped"]] for a in r["annotators"]],
                    num={1, 2, 3, 4}, empty="No votes yet.")
        return head + '<div class="lbl">per annotator</div>' + per + StudiesPage._judge(r.get("judge") or {})

    @staticmethod
    def _judge(j: dict) -> str:
        """How often the study's LLM judge disagrees with itself (its two orders) and with the humans."""
        if not j.get("judged") and not j.get("compared"):
            return ""
        def rate(key, n, of, what):
            value = j.get(f"{key}_rate")
            return (f"{100 * value:.0f}%" if value is not None else "–", f"{j[n]} of {j[of]} {what}")
        order = "judge disagreements first" if j.get("queue_order") == "disagreement" else "fewest votes first"
        return ('<div class="lbl">LLM judge (queue: ' + esc(order) + ')</div>'
                + cards([("judge's two orders disagree", *rate("orders_disagree", "orders_disagree", "judged",
                                                                 "items judged in both orders")),
                         ("judge and humans disagree", *rate("humans_disagree", "humans_disagree", "compared",
                                                             "items with a judge verdict and a human majority"))]))

    @shows_errors
    def decide(self, study_id, drop, request: gr.Request):
        with self.ui.session(request, "studies") as (s, _):
            study_service.review_leaks(s, parse_id(study_id), bool(drop))
            s.commit()
        return self.open_study(study_id, request)

    @shows_errors
    def set_status(self, study_id, status, request: gr.Request):
        with self.ui.session(request, "studies") as (s, _):
            study_service.set_status(s, parse_id(study_id), status)
            s.commit()
        return self.open_study(study_id, request)

    @shows_errors
    def export(self, study_id, fmt, request: gr.Request):
        study_id = parse_id(study_id)
        if study_id is None:
            raise InvalidInput("open a study first")
        with self.ui.session(request, "studies") as (s, _):
            text = results_service.export_votes(s, study_id, fmt)
        # A fresh temporary folder: Gradio serves files from the system's temp folder, and the export
        # (unblinded votes) is handed to this browser only.
        path = Path(tempfile.mkdtemp(prefix="gad-export-")) / f"study-{study_id}-votes.{fmt}"
        path.write_text(text, encoding="utf-8")
        return gr.update(value=str(path), visible=True)
