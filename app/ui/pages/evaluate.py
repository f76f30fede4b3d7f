"""Evaluate: judge checkpoints, base models or a file of responses on the built-in prompt sets or an
uploaded one with a judge endpoint (the paper's protocol); a score table like the paper's (models x
sets: score with its 95% interval, response length), a chart like its Figure 1, the best checkpoint
within a length range (the judge favours long answers), and every sample with both responses and the
judge's verdict. A running evaluation's panel follows the job by server push (app/ui/live.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import gradio as gr

from app.enums import JobKind, RunStatus
from app.errors import InvalidInput
from app.services import endpoints as ep_service
from app.services import evaluations as ev_service
from app.services import jobs as job_service
from app.services.chat import list_models
from app.services.datasets import dataset_options
from app.services.run_views import checkpoint_options
from app.services.studies import model_choice
from app.ui.common import LIVE, Followers, Ui, number_or_none, parse_id, shows_errors
from app.ui.live import follow_job, follow_value
from app.ui.widgets import charts
from app.ui.widgets.html import esc, num, table, when
from app.ui.widgets.jobs import is_live, job_panel, projection_panel
from gad.llm.eval_config import BUILTIN_SETS, EvalConfig
from gad.llm.judge import FORMULA_NOTE

SAMPLES_SHOWN = 500  # the samples table's rows (the prompts of one set)
_DEFAULTS = EvalConfig()


def _help(name: str) -> str:
    return EvalConfig.model_fields[name].description or ""


class EvaluatePage:
    def __init__(self, ui: Ui):
        self.ui = ui
        self._followers = Followers()

    # --- layout ---------------------------------------------------------------------------------
    def build(self) -> EvaluatePage:
        with gr.Accordion("New evaluation", open=True, elem_id="eval-new"):
            with gr.Row():
                self.models = gr.Dropdown(label="Models to judge", choices=[], multiselect=True,
                                          allow_custom_value=True, scale=3, elem_id="eval-models",
                                          info="checkpoints and base models; type a folder, a hub id or the path "
                                               "of a responses file (.jsonl) to judge ready answers")
                self.responses = gr.UploadButton("Upload a responses file…", type="filepath", file_count="single",
                                                 size="sm", scale=1, file_types=[".jsonl", ".json", ".csv", ".parquet"])
            with gr.Row():
                self.sets = gr.CheckboxGroup(list(BUILTIN_SETS), label="Built-in prompt sets", scale=2,
                                             info="the paper's test sets")
                self.datasets = gr.Dropdown(label="Uploaded sets (their test split)", choices=[], multiselect=True,
                                            scale=2, elem_id="eval-datasets")
                self.judge = gr.Dropdown(label="Judge endpoint", choices=[], scale=2, elem_id="eval-judge")
            with gr.Row():
                self.limit = gr.Textbox(label="Prompts per set", placeholder="all", info=_help("limit"),
                                        scale=1, elem_id="eval-limit")
                self.max_new_tokens = gr.Number(label="Max new tokens", value=_DEFAULTS.max_new_tokens, precision=0,
                                                minimum=1, scale=1, elem_id="eval-max-tokens",
                                                info=_help("max_new_tokens"))
                self.greedy = gr.Checkbox(label="Greedy decoding", value=_DEFAULTS.greedy, scale=1,
                                          info=f"default: temperature {_DEFAULTS.temperature}, as in the paper")
                self.both_orders = gr.Checkbox(label="Judge both orders", value=_DEFAULTS.both_orders, scale=1,
                                               info=_help("both_orders"))
                self.teacher = gr.Dropdown(label="Teacher row (optional)", choices=[], scale=2,
                                           info=_help("teacher"))
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=220):
                    self.cap = gr.Number(label="Cost cap, USD (optional: pauses the judging)", value=None,
                                         minimum=0, elem_id="eval-cap")
                    self.resume = gr.Button("Resume the paused evaluation with this cap", size="sm",
                                            elem_id="eval-resume")
                self.projection = gr.HTML(elem_id="eval-projection")  # what the judge would cost, before launch
            with gr.Row():
                self.launch = gr.Button("Launch evaluation", variant="primary", scale=0, min_width=220,
                                        elem_id="eval-launch")
                self.job = gr.HTML(elem_id="eval-job")
        self.results_box = gr.Column(visible=False)
        with self.results_box:
            self._build_results()
        self.none_yet = gr.HTML('<div class="gad-hint">No evaluation yet: launch one above. Scores, charts and '
                                'the judge’s verdicts appear here.</div>')
        # A new value starts the follower of a live evaluation (`follow`): set by refresh, launch and resume.
        self.following = gr.State(None)
        return self

    def _build_results(self) -> None:
        gr.HTML('<div class="gad-h">Results</div>')
        with gr.Row():
            self.pick = gr.Dropdown(label="Evaluation", choices=[], scale=3, elem_id="eval-pick")
            self.refresh_btn = gr.Button("↻ Refresh", size="sm", scale=0, min_width=110)
        self.scores = gr.HTML(elem_id="eval-scores")
        with gr.Row(equal_height=False):
            self.bars = gr.Plot(show_label=False, scale=3, elem_id="eval-bars")
            with gr.Column(scale=2):
                with gr.Row():
                    self.len_lo = gr.Number(label="Length from (words)", value=0, scale=1)
                    self.len_hi = gr.Number(label="to (words)", value=10000, scale=1)
                self.best = gr.HTML(elem_id="eval-best")
                self.scatter = gr.Plot(show_label=False)
        gr.HTML('<div class="gad-h">Samples</div>')
        self.cell = gr.Dropdown(label="Model and set", choices=[], elem_id="eval-cell")
        self.samples = gr.Dataframe(headers=["prompt id", "model score", "reference score", "verdict"],
                                    datatype=["str", "number", "number", "str"], interactive=False, max_height=300,
                                    elem_id="eval-samples")
        self.sample = gr.HTML(elem_id="eval-sample")
        self.rows = gr.State([])

    # --- wiring ---------------------------------------------------------------------------------
    def wire(self) -> None:
        launch_in = [self.models, self.sets, self.datasets, self.judge, self.limit, self.max_new_tokens, self.greedy,
                     self.both_orders, self.teacher, self.cap]
        gr.on([self.models.change, self.sets.change, self.datasets.change, self.judge.change, self.limit.blur,
               self.limit.submit, self.max_new_tokens.change, self.both_orders.change], self.project,
              [self.models, self.sets, self.datasets, self.judge, self.limit, self.max_new_tokens, self.both_orders],
              [self.projection], show_progress="hidden")
        self.resume.click(self.resume_paused, [self.pick, self.cap], [self.job, self.following, self.pick])
        self.models.change(lambda m: gr.update(choices=[""] + list(m or []), value=None), [self.models],
                           [self.teacher], show_progress="hidden")
        self.responses.upload(self.keep_upload, [self.responses, self.models], [self.models])
        self.launch.click(self.submit, launch_in, [self.job, self.following, self.pick])
        self.following.change(self.follow, [self.following], [self.job, self.pick] + self.result_outputs(), **LIVE)
        gr.on([self.pick.input, self.refresh_btn.click], self.show, [self.pick], self.result_outputs())
        gr.on([self.len_lo.submit, self.len_hi.submit, self.len_lo.blur, self.len_hi.blur], self.pick_best,
              [self.rows, self.len_lo, self.len_hi], [self.best, self.scatter], show_progress="hidden")
        self.cell.input(self.list_samples, [self.cell], [self.samples, self.sample])
        self.samples.select(self.show_sample, [self.cell], [self.sample])

    def result_outputs(self) -> list:
        return [self.results_box, self.none_yet, self.rows, self.scores, self.bars, self.len_lo, self.len_hi, self.best,
                self.scatter, self.cell,
                self.samples, self.sample]

    def load_inputs(self) -> list:
        return [self.judge, self.pick]

    def load_outputs(self) -> list:
        return [self.models, self.datasets, self.judge, self.pick, self.job, self.following] + self.result_outputs()

    # --- handlers -------------------------------------------------------------------------------
    def refresh(self, judge, shown, request: gr.Request, preselect: str | None = None):
        """Pickers and results from the database; the chosen judge and evaluation stay chosen. `preselect`:
        a model to judge, chosen for the user (a checkpoint's "Evaluate" button)."""
        judge, shown = parse_id(judge), parse_id(shown)
        with self.ui.session(request, "evaluations") as (s, _):
            models = [c["model_id"] for c in checkpoint_options(s)]
            models += [e.id for e in list_models(s, self.ui.ctx.settings) if e.kind == "base"]
            datasets = [(o["label"], f"dataset:{o['id']}") for o in dataset_options(s)]
            judges = [(f"{e.name} ({e.model})", e.id) for e in ep_service.list_endpoints(s)]
            jobs = ev_service.evaluation_jobs(s)
            picks = self._picks(jobs)
            latest = job_service.job_view(jobs[0]) if jobs else None
        if shown not in {j.id for j in jobs}:
            shown = next((j.id for j in jobs if j.status == RunStatus.succeeded), jobs[0].id if jobs else None)
        if judge not in {j[1] for j in judges}:
            judge = judges[0][1] if judges else None
        results = self._results(request, shown)
        return [gr.update(choices=models, value=[preselect]) if preselect else gr.update(choices=models),
                gr.update(choices=datasets), gr.update(choices=judges, value=judge),
                gr.update(choices=picks, value=shown), job_panel(latest, "evaluation"),
                follow_value(latest and latest["id"], is_live(latest)), *results]

    def keep_upload(self, path, models, request: gr.Request):
        """An uploaded responses file is kept under the data folder (named by its content) and offered as a model."""
        if not path:
            return gr.skip()
        data = Path(path).read_bytes()
        folder = self.ui.ctx.settings.data_dir / "uploads" / "responses"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{hashlib.sha256(data).hexdigest()[:12]}-{Path(path).name}"
        target.write_bytes(data)
        return gr.update(value=list(models or []) + [str(target.resolve())])

    @shows_errors
    def project(self, models, sets, datasets, judge, limit, max_new_tokens, both_orders, request: gr.Request):
        """What the judge would be asked and cost (services.costs), shown before the launch button is pressed."""
        from app.services.costs import project_evaluation

        chosen = list(sets or []) + list(datasets or [])
        if parse_id(judge) is None or not chosen:
            return '<div class="gad-hint">Choose prompt sets and a judge to see the projected cost.</div>'
        with self.ui.session(request, "evaluations") as (s, _):
            job_service.check_sets(s, chosen)
            return projection_panel(project_evaluation(
                s, self.ui.ctx.settings, n_models=max(1, len(models or [])), sets=chosen,
                judge_endpoint_id=parse_id(judge), limit=number_or_none(limit, "limit", int),
                max_new_tokens=int(max_new_tokens or _DEFAULTS.max_new_tokens), both_orders=bool(both_orders)))

    @shows_errors
    def resume_paused(self, job_id, cap, request: gr.Request):
        """The evaluation shown below, paused by its cost cap, queued again under the cap typed above."""
        job_id = parse_id(job_id)
        with self.ui.session(request, "evaluations") as (s, _):
            if job_id is None or job_service.get_job(s, job_id).status != RunStatus.paused:
                raise InvalidInput("the evaluation shown is not paused", field="max_cost_usd")
            job = job_service.resume_job(s, job_id, float(cap) if cap else None)
            s.commit()
            view = job_service.job_view(job)
        self.ui.ctx.enqueue(JobKind.evaluate, view["id"])
        return job_panel(view, "evaluation"), follow_value(view["id"], True), gr.skip()

    @shows_errors
    def submit(self, models, sets, datasets, judge, limit, max_new_tokens, greedy, both_orders, teacher, cap,
               request: gr.Request):
        if not models:
            raise InvalidInput("choose at least one model to judge", field="models")
        if parse_id(judge) is None:
            raise InvalidInput("choose a judge endpoint", field="judge_endpoint_id")
        with self.ui.session(request, "evaluations") as (s, user):
            specs = []
            for choice in models:
                spec = model_choice(s, self.ui.ctx.settings, choice)
                specs.append({"name": spec.pop("label"), **spec})
            job = job_service.create_evaluation_job(
                s, models=specs, sets=list(sets or []) + list(datasets or []), judge_endpoint_id=parse_id(judge),
                limit=number_or_none(limit, "limit", int),
                max_new_tokens=int(max_new_tokens or _DEFAULTS.max_new_tokens), greedy=bool(greedy),
                both_orders=bool(both_orders), teacher=teacher or None, max_cost_usd=float(cap) if cap else None,
                user_id=user.id)
            s.commit()
            view = job_service.job_view(job)
            picks = self._picks(ev_service.evaluation_jobs(s))
            warnings = _warnings(ev_service.job_warnings(s, job))
        self.ui.ctx.enqueue(JobKind.evaluate, view["id"])
        return (warnings + job_panel(view, "evaluation"), follow_value(view["id"], True),
                gr.update(choices=picks, value=view["id"]))

    async def follow(self, following, request: gr.Request):
        """Push the followed evaluation's panel while it runs; once it ends, its scores (app/ui/live.py)."""
        async for outputs in follow_job(self.ui.ctx.sessions, self._followers, following, request,
                                        lambda f: self.poll(f["job_id"], request)):
            yield outputs

    @shows_errors
    def poll(self, job_id: int, request: gr.Request) -> tuple[list, bool]:
        """The outputs of one live update (the follower's), and whether the evaluation is still live."""
        with self.ui.session(request, "evaluations") as (s, _):
            view = job_service.job_view(job_service.get_job(s, job_id))
        if is_live(view):
            return [job_panel(view, "evaluation"), gr.skip()] + [gr.skip()] * len(self.result_outputs()), True
        with self.ui.session(request, "evaluations") as (s, _):
            picks = self._picks(ev_service.evaluation_jobs(s))
        return [job_panel(view, "evaluation"), gr.update(choices=picks, value=job_id),
                *self._results(request, job_id)], False

    @staticmethod
    def _picks(jobs) -> list[tuple[str, int]]:
        return [(f"#{j.id} · {j.status} · {', '.join(m['name'] for m in j.params['models'])} "
                 f"· {when(j.created_at)}", j.id) for j in jobs]

    @shows_errors
    def show(self, job_id, request: gr.Request):
        return self._results(request, parse_id(job_id))

    def _results(self, request, job_id: int | None) -> list:
        if job_id is None:
            return [gr.update(visible=False), gr.update(visible=True)] + [gr.skip()] * 10
        with self.ui.session(request, "evaluations") as (s, _):
            job = job_service.get_job(s, job_id)
            rows = ev_service.job_rows(s, job_id)
            teacher = (job.params or {}).get("teacher")
            warnings = _warnings(ev_service.job_warnings(s, job))
        if not rows:
            msg = {RunStatus.failed: f"This evaluation failed: {job.error}"}.get(job.status, "No scores yet.")
            return [gr.update(visible=True), gr.update(visible=False), [], f'<div class="gad-hint">{esc(msg)}</div>',
                    charts.empty(msg, 300), gr.skip(), gr.skip(), "", charts.empty(msg, 300),
                    gr.update(choices=[], value=None), [], ""]
        lo, hi = ev_service.default_length_range(rows, teacher)
        best, scatter = self._best(rows, lo, hi, teacher)
        cells = [(f'{r["model"]} · {r["set"]} (score {num(r["score"], 3)})', r["id"]) for r in rows]
        return [gr.update(visible=True), gr.update(visible=False), rows, warnings + self._table(rows, teacher),
                charts.score_bars(rows), round(lo), round(hi), best, scatter,
                gr.update(choices=cells, value=None), [], ""]

    @staticmethod
    def _table(rows: list[dict], teacher: str | None) -> str:
        sets = list(dict.fromkeys(r["set"] for r in rows))
        models = list(dict.fromkeys(r["model"] for r in rows))
        cell = {(r["model"], r["set"]): r for r in rows}
        body = []
        for m in models:
            line = [esc(m) + (' <span class="gad-hint">(teacher)</span>' if m == teacher else "")]
            scores = []
            for s in sets:
                r = cell.get((m, s))
                if r is None or r["score"] is None:
                    line.append('<span class="muted">–</span>')
                    continue
                scores.append(r["score"])
                ci = (f' <span class="gad-hint">[{r["ci_low"]:.1f}, {r["ci_high"]:.1f}]</span>'
                      if r["ci_low"] is not None else "")
                line.append(f'<b>{r["score"]:.1f}</b>{ci}<br><span class="gad-hint">{num(r["length"])} words · '
                            f'{r["summary"].get("judged") or 0} judged<br>win rate {_pct(r["summary"].get("win_rate"))}'
                            f' · length-controlled {_pct(r["summary"].get("lc_win_rate"))}</span>')
            line.append(f"<b>{sum(scores) / len(scores):.1f}</b>" if scores else "–")
            body.append(line)
        return (table(["model"] + sets + ["average"], body, raw=set(range(len(sets) + 2)), num=set())
                + f'<div class="gad-hint">Bootstrap 95% intervals in brackets; length in words per response. '
                  f'Win rate: prompts where the model beats the judge’s reference (ties half); length-controlled: '
                  f'the win rate predicted at equal answer lengths (judges favour longer answers). '
                  f'{esc(FORMULA_NOTE)}</div>')

    @staticmethod
    def _best(rows: list[dict], lo: float, hi: float, teacher: str | None):
        best = ev_service.best_in_range(rows, lo, hi, exclude=teacher)
        if best is None:
            html = f'<div class="note">No model has a mean length between {lo:.0f} and {hi:.0f} words.</div>'
        elif len(best["tied"]) > 1:
            html = (f'<div class="note">Tie within {lo:.0f}–{hi:.0f} words: '
                    + " and ".join(f"<b>{esc(m)}</b>" for m in best["tied"])
                    + f' score {best["score"]:.1f} alike; no model is best.</div>')
            best = None
        else:
            html = (f'<div class="okbox">Best within {lo:.0f}–{hi:.0f} words: <b>{esc(best["model"])}</b> '
                    f'(score {best["score"]:.1f}, {best["length"]:.0f} words)</div>')
        return html, charts.score_vs_length(rows, lo, hi, best["model"] if best else None)

    def pick_best(self, rows, lo, hi):
        if not rows:
            return gr.skip(), gr.skip()
        return self._best(rows, float(lo or 0), float(hi or 0), None)

    @shows_errors
    def list_samples(self, evaluation_id, request: gr.Request):
        evaluation_id = parse_id(evaluation_id)
        if evaluation_id is None:
            return [], ""
        with self.ui.session(request, "evaluations") as (s, _):
            samples = ev_service.judge_samples(s, evaluation_id, limit=SAMPLES_SHOWN)
        return [[x["prompt_id"], x["model_score"], x["reference_score"], _verdict(x)] for x in samples], ""

    @shows_errors
    def show_sample(self, evaluation_id, evt: gr.SelectData, request: gr.Request):
        evaluation_id = parse_id(evaluation_id)
        if evaluation_id is None or evt is None:
            return ""
        with self.ui.session(request, "evaluations") as (s, _):
            samples = ev_service.judge_samples(s, evaluation_id, limit=SAMPLES_SHOWN)
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if row is None or row >= len(samples):
            return ""
        x = samples[row]
        verdicts = "".join(
            f'<div class="lbl">judge · {esc(order.replace("_", " "))} · model {num(v.get("model_score"))} / '
            f'reference {num(v.get("reference_score"))}</div><div class="rollout-prompt">'
            f'{esc(v.get("judge_text") or v.get("error") or "")}</div>'
            for order, v in ((k, v or {}) for k, v in x["verdicts"].items()))
        return (f'<div class="lbl">prompt {esc(x["prompt_id"])}</div>'
                f'<div class="rollout-prompt">{esc(x["prompt"])}</div>'
                f'<div class="pair-grid"><div><div class="lbl">model response · score {num(x["model_score"])}'
                f'</div><div class="student"><div class="text">{esc(x["response"])}</div></div></div>'
                f'<div><div class="lbl">judge’s reference answer · score {num(x["reference_score"])}</div>'
                f'<div class="student"><div class="text">{esc(x["reference"])}</div></div></div></div>{verdicts}')


def _pct(x) -> str:
    """A win rate as a percentage; none, or NaN (no usable verdict), as a dash."""
    return "–" if x is None or x != x else f"{100 * x:.0f}%"


def _warnings(items: list[str]) -> str:
    """Judge-bias warnings (self-preference) above the scores they concern."""
    return "".join(f'<div class="note"><b>Judge bias:</b> {esc(w)}</div>' for w in items)


def _verdict(x: dict) -> str:
    m, r = x["model_score"], x["reference_score"]
    if m is None or r is None:
        return "unparsed"
    return "model better" if m > r else "reference better" if m < r else "tie"
