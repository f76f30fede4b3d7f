"""Runs: every run with its status, method, stage, progress, ETA, last reward and discriminator accuracy
and its alarms, filtered by status, method or name; it refreshes itself while anything runs. A click
on a row opens the run's page (run_page.py); "Compare" overlays several runs (compare.py).
While a run is live the list follows the server by push (a generator event waiting on
app/services/events.py), as the run page does, not by a browser timer."""

from __future__ import annotations

import asyncio

import gradio as gr

from app.enums import RunStatus
from app.services import events, lifecycle, run_views
from app.ui.common import LIVE, Followers, Ui, shows_errors
from app.ui.pages.run_page import REFRESH_SECONDS, follow_token
from app.ui.widgets.html import badge, duration, esc, num, pbar
from gad.training.metric_catalog import M

METHOD_FILTER = ["all methods", "gad", "seqkd", "offpolicy"]
HEADERS = ["#", "name", "status", "method", "stage", "progress", "ETA", "reward", "D accuracy", "alarms"]


class RunsList:
    def __init__(self, ui: Ui):
        self.ui = ui
        self._followers = Followers()

    def build(self) -> RunsList:
        with gr.Row(equal_height=True):
            self.status = gr.CheckboxGroup([s.value for s in RunStatus], label="Status", scale=4,
                                           elem_id="runs-status-filter")
            self.method = gr.Dropdown(METHOD_FILTER, value=METHOD_FILTER[0], label="Method", scale=1)
            self.query = gr.Textbox(label="Search", placeholder="name or method", scale=2)
        self.table = gr.Dataframe(headers=HEADERS, datatype=["number", "str", "html", "str", "str", "html", "str",
                                                             "str", "str", "html"],
                                  interactive=False, max_height=560, elem_id="runs-table", wrap=True,
                                  column_widths=["5%", "21%", "9%", "7%", "9%", "14%", "8%", "7%", "8%", "12%"])
        gr.HTML('<div class="gad-hint">Click a run to open its page. Reward and discriminator accuracy are the '
                'last step’s values.</div>')
        self.ids = gr.State([])  # run ids in the table's row order, for clicks
        self.following = gr.State(None)  # a new value starts `follow` (see run_page.follow_token)
        return self

    def wire(self) -> None:
        filters = [self.status, self.method, self.query]
        gr.on([self.status.change, self.method.change, self.query.submit], self.refresh, filters,
              self.outputs(), show_progress="hidden")
        self.following.change(self.follow, [self.following, *filters], [self.table, self.ids], **LIVE)

    def outputs(self) -> list:
        return [self.table, self.ids, self.following]

    async def follow(self, token, statuses, method, query, request: gr.Request):
        """Push the list while a run is live; ends when none is, or when a newer follower of this browser
        session starts (filters changed, page reloaded). Same pattern as RunPage.follow_run."""
        session = request.session_hash or ""
        if not token:
            self._followers.drop(session)
            return
        version = None  # the first pass draws at once: a change since the list was drawn is not missed
        with self._followers.following(session, token) as current:
            while current():
                version = await events.wait_for_change(self.ui.ctx.sessions, events.RUNS, 0, version,
                                                       REFRESH_SECONDS)
                rows, ids, live = await asyncio.to_thread(self._rows, statuses, method, query, request)
                if not current():
                    return
                yield rows, ids
                if not live:
                    return

    @shows_errors
    def refresh(self, statuses, method, query, request: gr.Request):
        rows, ids, live = self._rows(statuses, method, query, request)
        return rows, ids, follow_token() if live else None

    @shows_errors
    def _rows(self, statuses, method, query, request: gr.Request) -> tuple[list, list, bool]:
        with self.ui.session(request, "runs") as (s, _):
            # Runs whose worker went silent are marked interrupted here too (the list is where one looks).
            lifecycle.reconcile_now_and_then(self.ui.ctx)  # throttled; its own session, committed
            runs, _total = run_views.list_runs(s, status=",".join(statuses or []) or None,
                                               method=None if method == METHOD_FILTER[0] else method,
                                               q=(query or "").strip() or None, limit=100)
            views = [run_views.run_view(s, r, self.ui.ctx.settings.heartbeat_timeout, full=False) for r in runs]
        rows = [self._row(v) for v in views]
        live = any(v["status"] in (RunStatus.queued, RunStatus.running) for v in views)
        if not rows:
            rows = [[None, "no runs match: launch one on the New run page", "", "", "", "", "", "", "", ""]]
        return rows, [v["id"] for v in views], live

    @staticmethod
    def _row(v: dict) -> list:
        m = v["last_metrics"]
        total = v["total_steps"]
        progress = (pbar(v["progress"], done=v["status"] == RunStatus.succeeded)
                    + f'<span class="gad-hint">{v["step"]}/{total or "?"}</span>')
        alarm = " ".join(f'<span class="badge st-failed" title="{esc(a["message"])}">'
                         f'⚠ {esc(a["kind"].replace("_", " "))}</span>' for a in v["alarms"])
        return [v["id"], v["name"], badge(v["status"]), v["method"], v["stage"] or "–", progress,
                duration(v["eta_seconds"]) if v["eta_seconds"] is not None else "–", num(m.get(M.REWARD_MEAN)),
                f'{100 * m[M.DISC_ACCURACY]:.0f}%' if m.get(M.DISC_ACCURACY) is not None else "–", alarm]
