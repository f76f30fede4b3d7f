"""Runs: every run with its status, method, stage, progress, ETA, last reward and discriminator accuracy
and its alarms, filtered by status, method or name; it refreshes itself while anything runs. A click
on a row opens the run's page (run_page.py); "Compare" overlays several runs (compare.py)."""

from __future__ import annotations

import gradio as gr

from app.enums import RunStatus
from app.services import lifecycle, run_views
from app.ui.common import LIVE, Ui, shows_errors
from app.ui.widgets.html import badge, duration, esc, num, pbar
from gad.training.metric_catalog import M

METHOD_FILTER = ["all methods", "gad", "seqkd", "offpolicy"]
HEADERS = ["#", "name", "status", "method", "stage", "progress", "ETA", "reward", "D accuracy", "alarms"]


class RunsList:
    def __init__(self, ui: Ui):
        self.ui = ui

    def build(self) -> "RunsList":
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
        self.timer = gr.Timer(3.0, active=True)
        return self

    def wire(self) -> None:
        filters = [self.status, self.method, self.query]
        gr.on([self.status.change, self.method.change, self.query.submit], self.refresh, filters,
              [self.table, self.ids, self.timer], show_progress="hidden")
        self.timer.tick(self.refresh, filters, [self.table, self.ids, self.timer], **LIVE)

    def outputs(self) -> list:
        return [self.table, self.ids, self.timer]

    @shows_errors
    def refresh(self, statuses, method, query, request: gr.Request):
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
        return rows, [v["id"] for v in views], gr.Timer(active=live)

    @staticmethod
    def _row(v: dict) -> list:
        m = v["last_metrics"]
        total = v["total_steps"]
        progress = (pbar(v["progress"], done=v["status"] == RunStatus.succeeded)
                    + f'<span class="gad-hint">{v["step"]}/{total or "?"}</span>')
        alarm = " ".join(f'<span class="badge st-failed" title="{esc(a["message"])}">⚠ {esc(a["kind"].replace("_", " "))}'
                         f'</span>' for a in v["alarms"])
        return [v["id"], v["name"], badge(v["status"]), v["method"], v["stage"] or "–", progress,
                duration(v["eta_seconds"]) if v["eta_seconds"] is not None else "–", num(m.get(M.REWARD_MEAN)),
                f'{100 * m[M.DISC_ACCURACY]:.0f}%' if m.get(M.DISC_ACCURACY) is not None else "–", alarm]
