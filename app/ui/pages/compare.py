"""Compare two or more runs: the chosen metrics overlaid (one colour per run, same smoothing and
downsampling as the run page) and the settings in which they differ."""

from __future__ import annotations

import gradio as gr

from app.services import run_views
from app.services import runs as run_service
from app.services.ui_queries import run_options
from app.ui.common import Ui, shows_errors
from app.ui.pages.run_page import load_series
from app.ui.widgets import charts
from app.ui.widgets.html import esc, table

DEFAULT_METRICS = ["disc_accuracy", "reward_mean", "kl", "student_length", "disc_loss", "loss"]


class ComparePage:
    def __init__(self, ui: Ui):
        self.ui = ui

    def build(self) -> "ComparePage":
        with gr.Row():
            self.runs = gr.Dropdown(label="Runs to compare", choices=[], multiselect=True, scale=3,
                                    elem_id="compare-runs")
            self.metrics = gr.Dropdown(label="Metrics", choices=DEFAULT_METRICS, value=DEFAULT_METRICS,
                                       multiselect=True, allow_custom_value=False, scale=3)
            self.smoothing = gr.Slider(0, 0.99, value=0.6, step=0.01, label="Smoothing (EMA)", scale=1)
        self.chart = gr.Plot(show_label=False, elem_id="compare-chart")
        gr.HTML('<div class="gad-h">Settings that differ</div>')
        self.diff = gr.HTML(elem_id="compare-diff")
        return self

    def wire(self) -> None:
        gr.on([self.runs.change, self.metrics.input, self.smoothing.release], self.compare,
              [self.runs, self.metrics, self.smoothing], [self.chart, self.diff, self.metrics],
              trigger_mode="always_last")

    def refresh(self, request: gr.Request):
        with self.ui.session(request, "runs") as (s, _):
            return gr.update(choices=[(o["label"], o["id"]) for o in run_options(s)])

    @shows_errors
    def compare(self, run_ids, metrics, smoothing, request: gr.Request):
        run_ids = [int(r) for r in run_ids or []]
        if len(run_ids) < 2:
            return charts.empty("Choose two or more runs to compare."), '<div class="gad-hint">–</div>', gr.skip()
        with self.ui.session(request, "runs") as (s, _):
            runs = [run_service.get_run(s, r) for r in run_ids]
            names = sorted({n for r in run_ids for n in run_views.metric_names(s, r)})
            series = {r.id: load_series(s, r.id, [m for m in metrics or [] if m in names]) for r in runs}
            differing = []
            for other in runs[1:]:  # every setting in which some run differs from the first
                differing += [d["field"] for d in run_views.config_diff(runs[0], other) if d["field"] not in differing]
            rows = [[esc(f)] + [esc(r.config.get(f)) for r in runs] for f in sorted(differing)]
            labels = [{"id": r.id, "label": f"#{r.id} {r.name}"} for r in runs]
        diff = table(["setting"] + [lab["label"] for lab in labels], rows, raw=set(range(len(runs) + 1)),
                     empty="The runs have the same settings.")
        return (charts.compare_curves(labels, series, metrics or [], smoothing), diff,
                gr.update(choices=sorted(set(names) | set(DEFAULT_METRICS))))
