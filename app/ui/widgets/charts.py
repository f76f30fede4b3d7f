"""Plotly charts as plain figure dicts (no plotly.graph_objects: building and validating Figure objects
costs more than the database queries behind a run page).

- `run_curves`: a run's metrics, one panel each, x axes linked (zoom one, zoom all); the raw line
  thin with an EMA over it, a min/max band wherever points are downsampled buckets (so a one-step
  spike stays visible), dashed stage boundaries, the discriminator-accuracy alarm line.
- `compare_curves`: the same panels with several runs overlaid.
- `histogram`, `score_bars` (the paper's Figure 1 kind), `score_vs_length`, `study_bars` (Figure 3).
"""

from __future__ import annotations

import json
import math

from gradio.components.plot import PlotData

from gad.llm.metrics import model_means
from gad.training import metric_catalog
from gad.training.health import STRONG_DISC_ACCURACY

# (title, metrics, y-axis label), from the one metric catalog. Panels with no data are left out.
RUN_PANELS: list[tuple[str, list[str], str]] = metric_catalog.panels()
PANEL_METRICS = frozenset(m for _, ms, _ in RUN_PANELS for m in ms)
COLORS = ["#ea580c", "#0f766e", "#2563eb", "#9333ea", "#db2777", "#ca8a04", "#475569", "#16a34a"]
FONT = {"family": "Source Sans Pro, system-ui, sans-serif", "size": 12, "color": "#334155"}
GRID = "#eef2f6"


def as_plot(fig: dict) -> PlotData:
    try:
        text = json.dumps(fig, allow_nan=False)
    except ValueError:  # a NaN or infinity somewhere (a score over no verdicts): JSON has none, so a gap
        text = json.dumps(_no_nan(fig), allow_nan=False)
    return PlotData(type="plotly", plot=text)


def _no_nan(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def _clean(values):
    """NaN and infinities become gaps (JSON has no NaN); 4 significant digits are plenty for a chart (a panel
    is a few hundred pixels tall) and keep the figure small on the wire."""
    return [float(f"{v:.4g}") if v is not None and math.isfinite(v) else None for v in values]


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def ema(values: list[float | None], weight: float) -> list[float | None]:
    """TensorBoard's debiased exponential moving average (weight 0: the raw values)."""
    if weight <= 0:
        return list(values)
    out, last, count = [], 0.0, 0
    for v in values:
        if v is None:
            out.append(None)
            continue
        count += 1
        last = last * weight + (1 - weight) * v
        out.append(float(f"{last / (1 - weight ** count):.5g}"))
    return out


def empty(message: str, height: int = 260) -> PlotData:
    return as_plot({"data": [], "layout": {
        "height": height, "font": FONT, "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff",
        "xaxis": {"visible": False}, "yaxis": {"visible": False}, "margin": {"l": 20, "r": 20, "t": 20, "b": 20},
        "annotations": [{"text": message, "showarrow": False, "font": {"size": 14, "color": "#64748b"},
                         "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}]}})


def _grid(n: int, cols: int, row_height: int) -> tuple[dict, list[tuple[str, str]]]:
    """Layout axes for n panels in a grid; returns (layout, [(x axis id, y axis id)])."""
    rows = max(1, math.ceil(n / cols))
    gap_x, gap_y = 0.07, 0.42 / rows if rows > 1 else 0.0
    width = (1 - gap_x * (cols - 1)) / cols
    height = (1 - gap_y * (rows - 1)) / rows
    layout, ids = {}, []
    for i in range(n):
        r, c = divmod(i, cols)
        x0 = c * (width + gap_x)
        y1 = 1 - r * (height + gap_y)
        k = "" if i == 0 else str(i + 1)
        layout[f"xaxis{k}"] = {"domain": [x0, x0 + width], "anchor": f"y{k}", "gridcolor": GRID, "zeroline": False,
                               "showline": True, "linecolor": "#cbd5e1", "ticks": "outside", "tickcolor": "#cbd5e1",
                               **({"matches": "x"} if i else {}),
                               **({"title": {"text": "step", "standoff": 4}} if i >= n - cols else {})}
        layout[f"yaxis{k}"] = {"domain": [y1 - height, y1], "anchor": f"x{k}", "gridcolor": GRID, "zeroline": False,
                               "showline": True, "linecolor": "#cbd5e1", "automargin": True}
        ids.append((f"x{k}", f"y{k}"))
    layout["height"] = rows * row_height + 70
    return layout, ids


def _integer_steps(layout: dict, steps: list) -> None:
    """Steps are whole numbers: on a short run Plotly would tick 0.5, 1, 1.5, ..."""
    span = (max(steps) - min(steps)) if steps else 0
    for key, axis in layout.items():
        if key.startswith("xaxis"):
            axis.update({"dtick": 1, "tick0": 0} if span <= 10 else {"tickformat": "d"})


def _title(text: str, xaxis: dict, yaxis: dict, legend: list[tuple[str, str]]) -> dict:
    keys = "  ".join(f'<span style="color:{c}">━ {name}</span>' for name, c in legend) if len(legend) > 1 else ""
    return {"text": f"<b>{text}</b>" + (f"   {keys}" if keys else ""), "showarrow": False, "xref": "paper",
            "yref": "paper", "x": xaxis["domain"][0], "y": yaxis["domain"][1], "xanchor": "left", "yanchor": "bottom",
            "font": {"size": 12.5, "color": "#0f172a"}}


def _base_layout(layout: dict) -> dict:
    return {**layout, "font": FONT, "paper_bgcolor": "#ffffff", "plot_bgcolor": "#ffffff", "showlegend": False,
            "hovermode": "x unified", "margin": {"l": 64, "r": 18, "t": 34, "b": 46}, "uirevision": "keep"}


def _x(steps: list[int]) -> dict:
    """Evenly spaced steps (every step, or downsampled buckets of one width) travel as x0 and dx, not as a list:
    the four traces of a downsampled series would otherwise each repeat the same few hundred numbers."""
    if len(steps) > 2:
        dx = steps[1] - steps[0]
        if dx > 0 and all(b - a == dx for a, b in zip(steps, steps[1:])):
            return {"x0": steps[0], "dx": dx}
    return {"x": steps}


def _series_traces(points: list[dict], name: str, color: str, xa: str, ya: str, smoothing: float,
                   legendgroup: str | None = None, show_legend: bool = False) -> list[dict]:
    x = _x([p["step"] for p in points])
    values = _clean([p["value"] for p in points])
    traces = []
    if any(p.get("n", 1) > 1 for p in points):  # downsampled: the band holds every step's extremes
        traces.append({"type": "scatter", "mode": "lines", **x, "y": _clean([p["max"] for p in points]),
                       "line": {"width": 0}, "xaxis": xa, "yaxis": ya, "hoverinfo": "skip", "showlegend": False,
                       "legendgroup": legendgroup})
        traces.append({"type": "scatter", "mode": "lines", **x, "y": _clean([p["min"] for p in points]),
                       "line": {"width": 0}, "fill": "tonexty", "fillcolor": _rgba(color, 0.18), "xaxis": xa,
                       "yaxis": ya, "hoverinfo": "skip", "showlegend": False, "legendgroup": legendgroup,
                       "name": f"{name} min/max"})
    smooth = smoothing > 0 and len(values) > 2
    traces.append({"type": "scatter", "mode": "lines" if len(values) > 1 else "markers", **x, "y": values,
                   "name": name if not smooth else f"{name} (raw)", "xaxis": xa, "yaxis": ya,
                   "line": {"color": color, "width": 1 if smooth else 1.8}, "opacity": 0.35 if smooth else 1.0,
                   "marker": {"color": color, "size": 6}, "legendgroup": legendgroup,
                   "showlegend": show_legend and not smooth, "hovertemplate": "%{y:.4g}"})
    if smooth:
        traces.append({"type": "scatter", "mode": "lines", **x, "y": _clean(ema(values, smoothing)), "name": name,
                       "xaxis": xa, "yaxis": ya, "line": {"color": color, "width": 2}, "legendgroup": legendgroup,
                       "showlegend": show_legend, "hovertemplate": "%{y:.4g}"})
    return traces


def _stage_marks(stages: list[dict], ids: list[tuple[str, str]], label_first_row: int) -> tuple[list, list]:
    shapes, notes = [], []
    for b in stages[1:]:  # the first stage starts at the first step: no line
        for i, (xa, ya) in enumerate(ids):
            shapes.append({"type": "line", "xref": xa, "yref": f"{ya} domain", "x0": b["step"] - 0.5,
                           "x1": b["step"] - 0.5, "y0": 0, "y1": 1, "line": {"color": "#94a3b8", "width": 1,
                                                                             "dash": "dash"}})
            if i < label_first_row:
                notes.append({"text": b["stage"], "xref": xa, "yref": f"{ya} domain", "x": b["step"] - 0.5, "y": 1,
                              "xanchor": "left", "yanchor": "top", "showarrow": False,
                              "font": {"size": 10, "color": "#64748b"}})
    return shapes, notes


def _steady_range(axis: dict, points: list[dict]) -> None:
    """A (nearly) constant series: a fixed range around it, so rounding noise is not blown up to full height."""
    values = [v for p in points for v in (p["min"], p["max"]) if v is not None and math.isfinite(v)]
    if not values:
        return
    lo, hi = min(values), max(values)
    if hi - lo <= 1e-6 * max(abs(hi), abs(lo), 1e-12):
        pad = abs(hi) * 0.5 or 1.0
        axis["range"] = [lo - pad, hi + pad]


def run_curves(series: dict[str, list[dict]], stages: list[dict], smoothing: float = 0.6,
               extra: list[str] | None = None, cols: int = 2) -> PlotData:
    """series: metric name -> points {step, value, min, max, n} (run_views.metric_series)."""
    panels = [(t, [m for m in ms if series.get(m)], unit) for t, ms, unit in RUN_PANELS]
    panels = [p for p in panels if p[1]] + [(m, [m], m) for m in (extra or []) if series.get(m)]
    if not panels:
        return empty("No metrics yet: the curves appear with the run's first step.")
    layout, ids = _grid(len(panels), cols, 250)
    data, notes, shapes = [], [], []
    for (title, metrics, unit), (xa, ya) in zip(panels, ids):
        legend = []
        # A schedule is read as it is: no smoothing of learning rates.
        weight = 0.0 if title == "Learning rates" else smoothing
        for j, m in enumerate(metrics):
            color = COLORS[j % len(COLORS)]
            legend.append((m, color))
            data += _series_traces(series[m], m, color, xa, ya, weight)
        ax = layout["yaxis" + ya[1:]]
        ax["title"] = {"text": unit, "font": {"size": 11}}
        if title == "Learning rates":
            ax["tickformat"] = ".1e"
        _steady_range(ax, [p for m in metrics for p in series[m]])
        if title == metric_catalog.PANELS[0].title:  # held-out D quality: 0.5 is a coin flip
            ax["range"] = [-1.03 if any(m.startswith("disc_eval_rho") for m in metrics) else -0.03, 1.03]
            shapes.append({"type": "line", "xref": f"{xa} domain", "yref": ya, "x0": 0, "x1": 1, "y0": 0.5, "y1": 0.5,
                           "line": {"color": "#64748b", "width": 1, "dash": "dash"}})
        if title == "Discriminator accuracy":
            ax["range"] = [-0.03, 1.03]
            shapes.append({"type": "line", "xref": f"{xa} domain", "yref": ya, "x0": 0, "x1": 1,
                           "y0": STRONG_DISC_ACCURACY, "y1": STRONG_DISC_ACCURACY,
                           "line": {"color": "#dc2626", "width": 1, "dash": "dot"}})
        notes.append(_title(title, layout["xaxis" + xa[1:]], ax, legend))
    marks, labels = _stage_marks(stages, ids, cols)
    _integer_steps(layout, [p["step"] for pts in series.values() for p in pts])
    layout = _base_layout(layout)
    layout.update(shapes=shapes + marks, annotations=notes + labels)
    return as_plot({"data": data, "layout": layout})


def compare_curves(runs: list[dict], series: dict[int, dict[str, list[dict]]], metrics: list[str],
                   smoothing: float = 0.6, cols: int = 2) -> PlotData:
    """runs: [{id, label}]; series: run id -> metric -> points. One panel per metric, one colour per run."""
    metrics = [m for m in metrics if any(series.get(r["id"], {}).get(m) for r in runs)]
    if not runs or not metrics:
        return empty("Choose two or more runs with metrics to compare.")
    layout, ids = _grid(len(metrics), cols, 250)
    data, notes, in_legend = [], [], set()
    for m, (xa, ya) in zip(metrics, ids):
        missing = []
        for j, r in enumerate(runs):
            pts = series.get(r["id"], {}).get(m)
            if pts:
                # Each run enters the legend once, on the first panel where it has data (a SeqKD run has
                # no discriminator panels, yet it belongs in the legend).
                data += _series_traces(pts, r["label"], COLORS[j % len(COLORS)], xa, ya, smoothing,
                                       legendgroup=str(r["id"]), show_legend=r["id"] not in in_legend)
                in_legend.add(r["id"])
            else:
                missing.append(r["label"].split(" ")[0])
        title = m + (f'  <span style="color:#94a3b8">(no data: {", ".join(missing)})</span>' if missing else "")
        notes.append(_title(title, layout["xaxis" + xa[1:]], layout["yaxis" + ya[1:]], []))
    _integer_steps(layout, [p["step"] for r in series.values() for pts in r.values() for p in pts])
    layout = _base_layout(layout)
    rows = math.ceil(len(metrics) / cols)
    layout.update(annotations=notes, showlegend=True, hovermode="closest",
                  legend={"orientation": "h", "x": 0, "y": 1 + 0.16 / rows, "yanchor": "bottom"})
    layout["margin"]["t"] = 80
    return as_plot({"data": data, "layout": layout})


def histogram(hist: dict, title: str, xlabel: str, color: str = "#ea580c") -> PlotData:
    edges, counts = hist.get("edges") or [], hist.get("counts") or []
    if not counts:
        return empty(f"{title}: no data", height=240)
    mids = [(a + b) / 2 for a, b in zip(edges, edges[1:])]
    width = (edges[1] - edges[0]) if len(edges) > 1 else 1
    mean = hist.get("mean")
    return as_plot({"data": [{"type": "bar", "x": mids, "y": counts, "width": width * 0.92,
                              "marker": {"color": color}, "hovertemplate": "%{x:.0f} words: %{y}<extra></extra>"}],
                    "layout": {**_base_layout({}), "height": 250, "hovermode": "closest",
                               "title": {"text": f"<b>{title}</b>" + (f"  (mean {mean:.0f})" if mean else ""),
                                         "font": {"size": 13}, "x": 0.02},
                               "margin": {"l": 56, "r": 12, "t": 40, "b": 44},
                               "xaxis": {"title": {"text": xlabel}, "gridcolor": GRID},
                               "yaxis": {"title": {"text": "prompts"}, "gridcolor": GRID},
                               "shapes": [{"type": "line", "xref": "x", "yref": "paper", "x0": mean, "x1": mean,
                                           "y0": 0, "y1": 1, "line": {"color": "#0f172a", "dash": "dot", "width": 1}}]
                               if mean else []}})


def model_colors(rows: list[dict]) -> dict[str, str]:
    """One colour per model of an evaluation, the same in every chart of it (order of first score)."""
    models = dict.fromkeys(r["model"] for r in rows if r.get("score") is not None)
    return {m: COLORS[j % len(COLORS)] for j, m in enumerate(models)}


def _rate(r: dict, key: str) -> float | None:
    """A row's win rate (in its summary, as stored, or at its top level, as gad writes it); None when NaN."""
    x = (r.get("summary") or {}).get(key, r.get(key))
    return None if x is None or x != x else x


def score_bars(rows: list[dict]) -> PlotData:
    """Scores per model and set with 95% intervals (grouped bars, like the paper's Figure 1) and, below them
    when the rows have them, the win rates against the judge's reference: raw (pale) and length-controlled."""
    colors = model_colors(rows)
    rows = [r for r in rows if r.get("score") is not None]
    if not rows:
        return empty("No scores yet.", height=300)
    sets = list(dict.fromkeys(r["set"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    cell = {(r["model"], r["set"]): r for r in rows}
    data = []
    for m in models:
        xs, ys, hi, lo = [], [], [], []
        for s in sets:
            r = cell.get((m, s))
            if r:
                xs.append(s)
                ys.append(r["score"])
                hi.append((r["ci_high"] - r["score"]) if r.get("ci_high") is not None else 0)
                lo.append((r["score"] - r["ci_low"]) if r.get("ci_low") is not None else 0)
        data.append({"type": "bar", "name": m, "x": xs, "y": ys, "marker": {"color": colors[m]},
                     "error_y": {"type": "data", "array": hi, "arrayminus": lo, "color": "#334155", "thickness": 1.2},
                     "text": [f"{y:.1f}" for y in ys], "textposition": "inside", "insidetextanchor": "start",
                     "textfont": {"color": "#ffffff"},
                     "hovertemplate": f"{m}<br>%{{x}}: %{{y:.1f}}<extra></extra>"})
    rates = any(_rate(r, "win_rate") is not None for r in rows)
    for m in models if rates else ():
        for key, label, opacity in (("win_rate", "win rate", 0.4), ("lc_win_rate", "length-controlled", 1.0)):
            got = [(s, _rate(cell[(m, s)], key)) for s in sets if (m, s) in cell]
            got = [(s, y) for s, y in got if y is not None]
            data.append({"type": "bar", "name": f"{m} · {label}", "legendgroup": m, "showlegend": False,
                         "x": [s for s, _ in got], "y": [round(100 * y, 1) for _, y in got],
                         "xaxis": "x2", "yaxis": "y2",
                         "offsetgroup": f"{m}:{key}", "marker": {"color": colors[m], "opacity": opacity},
                         "hovertemplate": f"{m}<br>%{{x}}: {label} %{{y:.0f}}%<extra></extra>"})
    top = max(r.get("ci_high") or r["score"] for r in rows)
    layout = {
        **_base_layout({}), "height": 560 if rates else 360, "barmode": "group", "showlegend": True,
        "hovermode": "closest",
        "title": {"text": "<b>Judge score by prompt set</b> (50 = on par with the judge's own reference)",
                  "font": {"size": 13}, "x": 0.01},
        "legend": {"orientation": "h", "y": -0.18},
        "margin": {"l": 60, "r": 16, "t": 44, "b": 70},
        "xaxis": {},
        "yaxis": {"title": {"text": "score"}, "gridcolor": GRID, "range": [0, max(60.0, top * 1.12)]},
        "shapes": [{"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": 50, "y1": 50,
                    "line": {"color": "#94a3b8", "dash": "dot", "width": 1}}]}
    if rates:  # a second panel below the scores; 50% = as often better as worse than the reference
        layout["yaxis"]["domain"] = [0.42, 1.0]
        layout["xaxis2"] = {"anchor": "y2", "matches": "x"}
        layout["yaxis2"] = {"domain": [0.0, 0.3], "range": [0, 100], "gridcolor": GRID, "ticksuffix": "%",
                            "title": {"text": "win rate"}}
        layout["shapes"].append({**layout["shapes"][0], "yref": "y2", "y0": 50, "y1": 50})
        layout["annotations"] = [{"text": "win rate vs the judge's reference: pale raw, solid length-controlled",
                                  "xref": "paper", "yref": "paper", "x": 0, "y": 0.34, "showarrow": False,
                                  "xanchor": "left", "font": {"size": 11}}]
    return as_plot({"data": data, "layout": layout})


def score_vs_length(rows: list[dict], lo: float, hi: float, best: str | None) -> PlotData:
    """Mean score against mean length per model (coloured as in score_bars); the allowed length range
    shaded, the pick ringed."""
    colors = model_colors(rows)
    pts = [(m["model"], m["score"], m["length"]) for m in model_means(rows)]
    if not pts:
        return empty("No scores yet.", height=300)
    data = [{"type": "scatter", "mode": "markers+text", "x": [p[2] for p in pts], "y": [p[1] for p in pts],
             "text": [p[0] for p in pts],
             # Neighbouring points are common (checkpoints of one run): alternate the label sides.
             "textposition": [("top center", "bottom center", "middle right", "middle left")[i % 4]
                              for i in range(len(pts))],
             "marker": {"size": [16 if p[0] == best else 10 for p in pts],
                        "color": [colors[p[0]] for p in pts],
                        "line": {"width": [3 if p[0] == best else 0 for p in pts], "color": "#0f172a"}},
             "hovertemplate": "%{text}<br>length %{x:.0f} words<br>score %{y:.1f}<extra></extra>"}]
    return as_plot({"data": data, "layout": {
        **_base_layout({}), "height": 320, "hovermode": "closest",
        "title": {"text": "<b>Score vs length</b> (shaded: allowed length range)", "font": {"size": 13}, "x": 0.01},
        "margin": {"l": 60, "r": 16, "t": 44, "b": 48},
        "xaxis": {"title": {"text": "mean response length (words)"}, "gridcolor": GRID},
        "yaxis": {"title": {"text": "mean score"}, "gridcolor": GRID},
        "shapes": [{"type": "rect", "xref": "x", "yref": "paper", "x0": lo, "x1": hi, "y0": 0, "y1": 1,
                    "fillcolor": "rgba(22,163,74,0.08)", "line": {"width": 0}, "layer": "below"}]}})


def _share_intervals(results: list[dict]) -> list[dict]:
    """The 95% intervals of the three shares, each where its share is read on the stacked bar and in a
    lane of its own (top: A wins, middle: tie, bottom: B wins): A wins at the green segment's right end,
    B wins at the red segment's left end (mirrored), the tie share across the grey segment's middle (its
    width's interval, half to each side)."""
    def pct(r, key):
        return 100 * (r[f"{key}_rate"] or 0), [100 * v for v in (r[f"{key}_ci"] or [0, 0])]

    xs = {k: [] for k in ("win", "tie", "loss")}
    plus, minus = {k: [] for k in xs}, {k: [] for k in xs}
    for r in results:
        (win, (wl, wh)), (tie, (tl, th)), (loss, (ll, lh)) = pct(r, "win"), pct(r, "tie"), pct(r, "loss")
        xs["win"].append(win), plus["win"].append(wh - win), minus["win"].append(win - wl)
        xs["tie"].append(win + tie / 2), plus["tie"].append((th - tie) / 2), minus["tie"].append((tie - tl) / 2)
        xs["loss"].append(100 - loss), plus["loss"].append(loss - ll), minus["loss"].append(lh - loss)
    traces = []
    for key, name, color, lane in (("win", "A wins", "#14532d", -0.24), ("tie", "tie", "#334155", 0.0),
                                   ("loss", "B wins", "#7f1d1d", 0.24)):
        cis = [r[f"{key}_ci"] for r in results]
        traces.append({"type": "scatter", "mode": "markers", "name": f"95% interval: {name}",
                       "y": [i + lane for i in range(len(results))],
                       "x": xs[key], "marker": {"size": 7, "color": color, "symbol": "line-ns-open"},
                       "error_x": {"type": "data", "color": color, "thickness": 1.5, "width": 6,
                                   "array": plus[key], "arrayminus": minus[key]},
                       "text": [f"{100 * c[0]:.0f}–{100 * c[1]:.0f}%" if c else "–" for c in cis],
                       "hovertemplate": f"{name}, 95% interval: %{{text}}<extra></extra>", "showlegend": True})
    return traces


def study_bars(results: list[dict]) -> PlotData:
    """Win / tie / loss shares of model A against model B, one stacked bar per study, with the 95%
    interval of each share (the paper's Figure 3)."""
    results = [r for r in results if r.get("votes")]
    if not results:
        return empty("No votes yet.", height=220)
    labels = [f"A: {r['model_a']}<br>B: {r['model_b']}" for r in results]
    data = []
    for key, name, color in (("win", "A wins", "#16a34a"), ("tie", "tie", "#cbd5e1"), ("loss", "B wins", "#dc2626")):
        xs = [100 * (r[f"{key}_rate"] or 0) for r in results]
        trace = {"type": "bar", "orientation": "h", "name": name, "y": list(range(len(results))), "x": xs,
                 "marker": {"color": color}, "width": 0.8,
                 "text": [f"{x:.0f}%" if x >= 6 else "" for x in xs], "textposition": "inside",
                 "insidetextanchor": "middle", "hovertemplate": f"{name}: %{{x:.1f}}%<extra></extra>"}
        data.append(trace)
    data += _share_intervals(results)
    return as_plot({"data": data, "layout": {
        **_base_layout({}), "barmode": "stack", "showlegend": True, "hovermode": "closest",
        "height": 170 + 56 * len(results), "legend": {"orientation": "h", "y": -0.35, "traceorder": "normal"},
        "title": {"text": "<b>Human preference</b>: A against B", "font": {"size": 13}, "x": 0.01},
        "margin": {"l": 16, "r": 16, "t": 44, "b": 60},
        "xaxis": {"range": [0, 100], "gridcolor": GRID, "ticksuffix": "%"},
        # numeric rows (named by tick labels), so each share's interval gets a lane of its own in the bar
        "yaxis": {"automargin": True, "tickvals": list(range(len(results))), "ticktext": labels,
                  "range": [-0.6, len(results) - 0.4], "autorange": "reversed", "zeroline": False,
                  "showgrid": False}}})
