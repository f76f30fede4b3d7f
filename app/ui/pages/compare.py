"""Compare two or more runs: the chosen metrics overlaid (one colour per run, same smoothing and
downsampling as the run page) and the settings in which they differ."""

from __future__ import annotations

import gradio as gr

from app.services import run_views
from app.services import runs as run_service
from app.ui.common import Ui, shows_errors
from app.ui.pages.run_page import load_series
from app.ui.widgets import charts
from app.ui.widgets.html import esc, table
from gad.training.metric_catalog import M

DEFAULT_METRICS = [M.DISC_ACCURACY, M.REWARD_MEAN, "kl", M.STUDENT_LENGTH, M.DISC_LOSS, "loss"]


class ComparePage:
    def __init__(self, ui: Ui):
        self.ui = ui

    def build(self) -> ComparePage:
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
            return gr.update(choices=[(o["label"], o["id"]) for o in run_views.run_options(s)])

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
            used = [_used_settings(r.config) for r in runs]
            rows = [[esc(f)] + [_setting_cell(r.config.get(f), f in u, r.method) for r, u in zip(runs, used)]
                    for f in sorted(differing)]
            if any(r.parent_id for r in runs):  # where a fork came from matters as much as its settings
                rows.insert(0, ["<b>forked from</b>"] + [f"run #{r.parent_id} at step {r.parent_step}" if r.parent_id
                                                         else "–" for r in runs])
            labels = [{"id": r.id, "label": f"#{r.id} {r.name}"} for r in runs]
        diff = table(["setting"] + [lab["label"] for lab in labels], rows, raw=set(range(len(runs) + 1)),
                     empty="The runs have the same settings.")
        if rows:
            diff = ('<div class="gad-hint">Greyed: the run’s method does not use that setting, so the difference '
                    'does not matter.</div>' + diff)
        return (charts.compare_curves(labels, series, metrics or [], smoothing), diff,
                gr.update(choices=sorted(set(names) | set(DEFAULT_METRICS))))


def _used_settings(config: dict) -> frozenset[str]:
    """The training settings the run's method uses, plus every setting no method trains with (save_steps,
    sample_every, ...): those always matter. Unreadable settings: all of them."""
    from gad.training.config import build_config, method_fields

    try:
        cfg = build_config(config)
        some_method = set().union(*(method_fields(build_config({**config, "method": m, "lora": True,
                                                                "warmup_steps": None, "disc_warmup_steps": 1,
                                                                "generator_warmup": True,
                                                                "discriminator_warmup": True}))
                                    for m in ("gad", "seqkd", "offpolicy")))
        return frozenset(method_fields(cfg) | (set(config) - some_method))
    except Exception:
        return frozenset(config)


def _setting_cell(value, used: bool, method: str) -> str:
    if used:
        return esc(value)
    return (f'<span style="color:#94a3b8" title="ignored by {esc(method)}">{esc(value)} '
            f'(ignored by {esc(method)})</span>')
