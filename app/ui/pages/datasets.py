"""Datasets: upload a prompt set (a worker checks it whole and imports it, with progress here; an error
names the line and the field), see the list, and for one dataset its numbers, length histograms, a
paged preview, and how many prompts have teacher responses; launch a teacher collection from an
endpoint and watch it live by server push (progress, rate, failures with their reasons, tokens, cost,
ETA); retry the prompts that failed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import gradio as gr

from app.enums import JobKind, RunStatus
from app.errors import BrokerUnavailable, InvalidInput
from app.services import datasets as ds_service
from app.services import endpoints as ep_service
from app.services import events, uploads
from app.services import jobs as job_service
from app.ui.common import LIVE, Followers, Ui, parse_id, shows_errors
from app.ui.live import follow_job, follow_value
from app.ui.widgets.html import cards, error_box, esc, histogram_svg, ok_box, table, when
from app.ui.widgets.jobs import is_live, job_panel, projection_panel, upload_progress

PAGE = 20
FORMAT_HINT = ("JSONL, JSON, CSV or Parquet (optionally .gz). One record per prompt: `messages` (a chat, "
               "ending with the user's turn) or `prompt`/`instruction`; an optional `response` is the teacher's "
               "answer; `id` is optional.")


class DatasetsPage:
    def __init__(self, ui: Ui):
        self.ui = ui
        self._followers = Followers()

    # --- layout ---------------------------------------------------------------------------------
    def build(self) -> DatasetsPage:
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                gr.HTML('<div class="gad-h">Upload a prompt set</div>')
                gr.Markdown(FORMAT_HINT, elem_classes=["gad-hint", "gad-md"])
                with gr.Row():
                    self.name = gr.Textbox(label="Name", placeholder="from the file name", scale=2)
                    self.test_fraction = gr.Slider(0, 0.5, value=0.1, step=0.05, label="Held-out test share",
                                                   info="kept out of training; evaluations and studies use it",
                                                   scale=2, elem_id="upload-test-share")
                self.upload = gr.File(label="Drop a file (checked whole, then imported; progress shows below)",
                                      file_count="single", type="filepath", height=110, elem_id="dataset-upload")
                self.upload_result = gr.HTML(elem_id="upload-result")
            with gr.Column(scale=3, min_width=420):
                gr.HTML('<div class="gad-h">Datasets</div>')
                self.listing = gr.HTML(elem_id="datasets-table")
                self.pick = gr.Dropdown(label="Open a dataset", choices=[], value=None, elem_id="dataset-pick")
        with gr.Column(visible=False) as self.detail:
            self.summary = gr.HTML(elem_id="dataset-summary")
            with gr.Row():
                self.hist_prompt = gr.HTML(elem_id="dataset-hist-prompt")
                self.hist_response = gr.HTML(elem_id="dataset-hist-response")
            with gr.Tabs():
                with gr.Tab("Preview"):
                    with gr.Row():
                        self.split = gr.Radio(["all", "train", "test"], value="all", label="Split", scale=2)
                        self.prev = gr.Button("◀ Previous", size="sm", scale=1)
                        self.next = gr.Button("Next ▶", size="sm", scale=1)
                        self.page_info = gr.HTML()
                    self.offset = gr.State(0)
                    self.preview = gr.Dataframe(headers=["#", "id", "split", "prompt", "teacher response"],
                                                datatype=["number", "str", "str", "str", "str"], wrap=True,
                                                interactive=False, max_height=440, elem_id="dataset-preview",
                                                column_widths=["6%", "12%", "8%", "37%", "37%"])
                with gr.Tab("Teacher collection"):
                    gr.Markdown("Ask a teacher endpoint for a response to every prompt. Answers are cached: "
                                "prompts answered before are never paid twice, and a collection can be "
                                "stopped and resumed. Sampling, concurrency, rate limits and prices are the "
                                "endpoint's settings (admins edit them on the Admin page).",
                                elem_classes=["gad-hint"])
                    with gr.Row():
                        self.endpoint = gr.Dropdown(label="Teacher endpoint", choices=[], scale=2,
                                                    elem_id="collect-endpoint")
                        with gr.Column(scale=1, min_width=220):
                            self.collect_btn = gr.Button("Collect teacher responses", variant="primary", size="sm",
                                                         elem_id="collect-start")
                            self.retry_btn = gr.Button("Retry failed prompts", size="sm", elem_id="collect-retry")
                        with gr.Column(scale=1, min_width=220):
                            self.cap = gr.Number(label="Cost cap, USD (optional: pauses the job)", value=None,
                                                 minimum=0, elem_id="collect-cap")
                            self.resume_btn = gr.Button("Resume paused collection with this cap", size="sm",
                                                        elem_id="collect-resume")
                    self.endpoint_info = gr.HTML()
                    self.projection = gr.HTML(elem_id="collect-projection")
                    self.job = gr.HTML(elem_id="collect-job")
                    self.history = gr.HTML()
        # A new value starts the follower of a live collection (app/ui/live.py): set by open, collect, resume.
        self.following = gr.State(None)
        return self

    # --- wiring ---------------------------------------------------------------------------------
    def detail_outputs(self) -> list:
        return [self.detail, self.summary, self.hist_prompt, self.hist_response, self.offset, self.preview,
                self.page_info, self.endpoint, self.endpoint_info, self.job, self.history, self.following]

    def wire(self, remembered: gr.BrowserState) -> None:
        detail_out = self.detail_outputs()
        # The picker's value set by the import fires no input event: open the new set explicitly.
        self.upload.upload(self.import_file, [self.upload, self.name, self.test_fraction],
                           [self.upload_result, self.listing, self.pick, self.upload]).success(
            self.open, [self.pick], detail_out).then(lambda v: v, [self.pick], [remembered])
        self.pick.input(self.open, [self.pick], detail_out).then(lambda v: v, [self.pick], [remembered])
        self.split.change(self.page, [self.pick, self.split, gr.State(0)], [self.offset, self.preview, self.page_info])
        self.prev.click(self.page, [self.pick, self.split, self.offset, gr.State(-PAGE)],
                        [self.offset, self.preview, self.page_info])
        self.next.click(self.page, [self.pick, self.split, self.offset, gr.State(PAGE)],
                        [self.offset, self.preview, self.page_info])
        self.endpoint.change(self.describe_endpoint, [self.endpoint], [self.endpoint_info]).then(
            self.project, [self.pick, self.endpoint], [self.projection])
        self.collect_btn.click(self.collect, [self.pick, self.endpoint, gr.State(False), self.cap],
                               [self.job, self.following])
        self.retry_btn.click(self.collect, [self.pick, self.endpoint, gr.State(True), self.cap],
                             [self.job, self.following])
        self.resume_btn.click(self.resume, [self.pick, self.cap], [self.job, self.following])
        self.following.change(self.follow, [self.following], [self.job, self.summary, self.history, self.listing,
                                                  self.pick, self.hist_prompt, self.hist_response], **LIVE)

    def load_inputs(self) -> list:
        return [self.pick]

    def load_outputs(self) -> list:
        return [self.listing, self.pick]

    # --- handlers -------------------------------------------------------------------------------
    def refresh_list(self, selected, request: gr.Request):
        """The list and the picker from the database; the open dataset stays open if it still exists."""
        selected = parse_id(selected)
        with self.ui.session(request, "datasets") as (s, _):
            options = ds_service.dataset_options(s)
        rows = [[o["id"], o["name"], o["n_prompts"], f'{o["with_response"]:,} / {o["n_prompts"]:,}'] for o in options]
        listing = table(["#", "name", "prompts", "with teacher response"], rows, num={0, 2},
                        empty="No datasets yet: upload one on the left.")
        choices = [(o["label"], o["id"]) for o in options]
        ids = {o["id"] for o in options}
        return [listing, gr.update(choices=choices, value=selected if selected in ids else None)]

    @shows_errors
    async def import_file(self, path, name, test_fraction, request: gr.Request):
        """Store the file and follow its import job (a worker parses it): progress, then the new set, or
        the file's error (the line and the field to fix)."""
        if not path:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        shown = Path(path).name
        try:
            job_id = await asyncio.to_thread(self._stash, path, name, test_fraction, request)
        except InvalidInput as err:  # refused before any parsing: its name or size
            yield error_box(f"{shown} was not imported:\n{err.message}"), gr.skip(), gr.skip(), None
            return
        try:
            self.ui.ctx.enqueue(JobKind.upload, job_id)
            note = ""
        except BrokerUnavailable as err:  # stored; the sweeper sends it when the queue is back
            note = err.message
        version = view = None
        while True:
            version = await events.wait_for_change(self.ui.ctx.sessions, events.JOB, job_id, version, 20.0)
            view = await asyncio.to_thread(self._job, request, job_id)
            if view["status"] in RunStatus.finished():
                break
            yield upload_progress(view, shown, note), gr.skip(), gr.skip(), gr.skip()
        if view["status"] != RunStatus.succeeded:
            # The file is rejected whole; the message names the line and the field to fix.
            why = view["error"] or view["status"]
            yield error_box(f"{shown} was not imported:\n{why}"), gr.skip(), gr.skip(), None
            return
        done = view["result"]
        listing, pick = await asyncio.to_thread(self.refresh_list, done["dataset_id"], request)
        yield (ok_box(f"Imported “{done['name']}”: {done['n_prompts']:,} prompts (dataset #{done['dataset_id']})."),
               listing, pick, None)

    def _stash(self, path, name, test_fraction, request) -> int:
        settings = self.ui.ctx.settings
        with self.ui.session(request, "datasets") as (s, user), Path(path).open("rb") as fh:
            job = uploads.stash_upload(s, settings.data_dir / "uploads", fh, Path(path).name,
                                       max_bytes=int(settings.max_upload_mb * 2**20),
                                       max_rows=settings.max_upload_rows, name=name or None,
                                       test_fraction=float(test_fraction or 0), user_id=user.id)
            s.commit()
            return job.id

    def _job(self, request, job_id: int) -> dict:
        with self.ui.session(request, "datasets") as (s, _):
            return job_service.job_view(job_service.get_job(s, job_id))

    @shows_errors
    def open(self, dataset_id, request: gr.Request):
        dataset_id = parse_id(dataset_id)
        if dataset_id is None:
            return [gr.update(visible=False)] + [gr.skip()] * 11
        with self.ui.session(request, "datasets") as (s, _):
            stats = ds_service.statistics(s, dataset_id)
            endpoints = [(f"{e.name} ({e.model})", e.id) for e in ep_service.list_endpoints(s)]
        offset, rows, info = self._page(request, dataset_id, "all", 0)
        job, history, latest = self._jobs(request, dataset_id)
        first = endpoints[0][1] if endpoints else None
        return [gr.update(visible=True), self._summary(stats), *self._histograms(stats), offset, rows, info,
                gr.update(choices=endpoints, value=first),
                self._endpoint_html(request, first), job, history,
                follow_value(latest and latest["id"], is_live(latest), dataset_id=dataset_id)]

    def _summary(self, stats: dict) -> str:
        n, have = stats["n_prompts"], stats["with_response"]
        pct = f"{100 * have / n:.0f}% of prompts" if n else None
        return (f'<div class="gad-h">#{stats["id"]} {esc(stats["name"])} '
                f'<span class="gad-hint">from {esc(stats["source"])} · {esc(when(stats["created_at"]))}</span></div>'
                + cards([("prompts", f"{n:,}"), ("with teacher response", f"{have:,}", pct),
                         ("train / test", f'{stats["n_train"]:,} / {stats["n_test"]:,}'),
                         ("multi-turn", f'{stats["turns"]["multi_turn"]:,}')]))

    @shows_errors
    def page(self, dataset_id, split, offset, delta=0, request: gr.Request = None):
        dataset_id = parse_id(dataset_id)
        if dataset_id is None:
            return gr.skip(), gr.skip(), gr.skip()
        return self._page(request, dataset_id, split, max(0, int(offset or 0) + int(delta or 0)))

    def _page(self, request, dataset_id: int, split: str, offset: int):
        with self.ui.session(request, "datasets") as (s, _):
            rows, total = ds_service.preview(s, dataset_id, offset=offset, limit=PAGE,
                                             split=None if split == "all" else split)
            if offset >= total > 0:  # paged past the end: show the last page
                offset = (total - 1) // PAGE * PAGE
                rows, total = ds_service.preview(s, dataset_id, offset=offset, limit=PAGE,
                                                 split=None if split == "all" else split)

        def clip(text):
            text = text or ""
            return text if len(text) <= 400 else text[:400] + " …"
        data = [[r["idx"], r["id"], r["split"], clip(r["prompt"]), clip(r["response"]) if r["response"] else "—"]
                for r in rows]
        info = f'<div class="gad-hint">rows {offset + 1 if total else 0}–{offset + len(rows)} of {total:,}</div>'
        return offset, data, info

    def describe_endpoint(self, endpoint_id, request: gr.Request):
        return self._endpoint_html(request, parse_id(endpoint_id))

    def _endpoint_html(self, request, endpoint_id: int | None) -> str:
        if endpoint_id is None:
            return '<div class="note">No endpoint yet: an admin adds teacher endpoints on the Admin page.</div>'
        with self.ui.session(request, "endpoints.read") as (s, _):
            view = ep_service.public_view(ep_service.get_endpoint(s, endpoint_id))
        p = view["params"] or {}
        price = (f'${p["price_prompt"]}/M in, ${p.get("price_completion", 0)}/M out'
                 if p.get("price_prompt") is not None
                 else "the known price table")
        limits = ", ".join(f"{k} {p[k]}" for k in ("rpm", "tpm") if p.get(k)) or "none"
        return cards([("model", view["model"]), ("concurrency", p.get("concurrency", 16)), ("rate limits", limits),
                      ("max tokens", p.get("max_tokens") or "endpoint default"), ("price", price)])

    def _jobs(self, request, dataset_id: int):
        with self.ui.session(request, "jobs") as (s, _):
            jobs = [j for j in job_service.list_jobs(s, JobKind.collect, limit=200)
                    if (j.params or {}).get("dataset_id") == dataset_id]
            views = [job_service.job_view(j) for j in jobs]
        latest = views[0] if views else None
        history = table(["job", "status", "answered", "failed", "cost", "started"],
                        [[v["id"], v["status"], (v["stats"] or {}).get("ok", "–"),
                          (v["stats"] or {}).get("failed", "–"),
                          f'${v["cost"]:.4f}', when(v["started_at"] or v["created_at"])] for v in views[1:]],
                        num={0, 2, 3}, empty="") if len(views) > 1 else ""
        return job_panel(latest, "collection"), history, latest

    @shows_errors
    def project(self, dataset_id, endpoint_id, request: gr.Request):
        """The collection's projected requests, tokens and cost, shown before the launch button is pressed."""
        from app.services.costs import project_collect

        dataset_id, endpoint_id = parse_id(dataset_id), parse_id(endpoint_id)
        if dataset_id is None or endpoint_id is None:
            return ""
        with self.ui.session(request, "jobs") as (s, _):
            return projection_panel(project_collect(s, self.ui.ctx.settings, dataset_id=dataset_id,
                                                    endpoint_id=endpoint_id))

    @shows_errors
    def resume(self, dataset_id, cap, request: gr.Request):
        """The dataset's latest collection, paused by its cap, queued again under the cap typed above."""
        dataset_id = parse_id(dataset_id)
        with self.ui.session(request, "jobs") as (s, _):
            paused = [j for j in job_service.list_jobs(s, JobKind.collect, limit=200)
                      if (j.params or {}).get("dataset_id") == dataset_id and j.status == RunStatus.paused]
            if not paused:
                raise InvalidInput("this dataset has no paused collection", field="max_cost_usd")
            job = job_service.resume_job(s, paused[0].id, float(cap) if cap else None)
            s.commit()
            view = job_service.job_view(job)
        self.ui.ctx.enqueue(JobKind.collect, view["id"])
        return job_panel(view, "collection"), follow_value(view["id"], True, dataset_id=dataset_id)

    @shows_errors
    def collect(self, dataset_id, endpoint_id, retry_failed, cap, request: gr.Request):
        dataset_id, endpoint_id = parse_id(dataset_id), parse_id(endpoint_id)
        if dataset_id is None or endpoint_id is None:
            raise InvalidInput("choose a dataset and a teacher endpoint first", field="endpoint_id")
        with self.ui.session(request, "jobs") as (s, user):
            job = job_service.create_collect_job(s, dataset_id=dataset_id, endpoint_id=endpoint_id,
                                                 retry_failed=bool(retry_failed),
                                                 max_cost_usd=float(cap) if cap else None, user_id=user.id)
            s.commit()
            view = job_service.job_view(job)
        self.ui.ctx.enqueue(JobKind.collect, view["id"])
        return job_panel(view, "collection"), follow_value(view["id"], True, dataset_id=dataset_id)

    async def follow(self, following, request: gr.Request):
        """Push the followed collection's panel and counts while it runs (app/ui/live.py)."""
        async for outputs in follow_job(self.ui.ctx.sessions, self._followers, following, request,
                                        lambda f: self.poll(f["dataset_id"], request)):
            yield outputs

    @shows_errors
    def poll(self, dataset_id: int, request: gr.Request) -> tuple[list, bool]:
        """The outputs of one live update (the follower's), and whether the collection is still live."""
        job, history, latest = self._jobs(request, dataset_id)
        with self.ui.session(request, "datasets") as (s, _):
            stats = ds_service.statistics(s, dataset_id)
        if is_live(latest):
            return [job, self._summary(stats), history] + [gr.skip()] * 4, True
        # Done: everything that counts teacher responses is redrawn once.
        listing, pick = self.refresh_list(dataset_id, request)
        return [job, self._summary(stats), history, listing, pick, *self._histograms(stats)], False

    @staticmethod
    def _histograms(stats: dict) -> list:
        return [histogram_svg(stats["prompt_words"], "Prompt length", "words per prompt"),
                histogram_svg(stats["response_words"], "Teacher response length", "words per response",
                              color="#0f766e")]
