"""Curves of a run, drawn from metrics.jsonl, and the health checks a user should see.

`plot_run(run_dir)` writes curves.png: discriminator loss and accuracy, D(teacher) vs D(student),
reward, KL, response lengths, generator loss; stage boundaries are dashed lines.
`health_warnings(records)` (from gad.training.health) flags the run alarms.
"""

from __future__ import annotations

import json
from pathlib import Path

from gad.training.metric_catalog import PANELS as CATALOG_PANELS
from gad.training.metric_catalog import panel_metrics

# The catalog's panels in its order, except the generator loss, split by stage (the losses differ in kind).
PANELS = [(p.title, panel_metrics(p.key)) for p in CATALOG_PANELS if p.key != "loss"]
PANELS.insert([p.key for p in CATALOG_PANELS].index("loss"), ("Supervised loss (cross-entropy)",
                                                             ["loss@warmup", "loss@seqkd"]))
PANELS.insert([p.key for p in CATALOG_PANELS].index("loss") + 1, ("Policy loss (GRPO)", ["loss@adversarial"]))

# The alarms live in gad.training.health (no matplotlib there, so the web can use them); re-exported here.
from gad.training.health import STRONG_DISC_ACCURACY, health_warnings  # noqa: E402,F401


def _value(record: dict, key: str):
    """'loss@adversarial' reads `loss` from that stage's records only (the losses differ in kind)."""
    name, _, stage = key.partition("@")
    if stage and record.get("stage") != stage:
        return None
    return record.get(name)


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    records = read_metrics(run_dir)
    if not records:
        return None
    out = Path(out) if out else Path(run_dir) / "curves.png"
    panels = [(t, keys) for t, keys in PANELS
              if any(isinstance(_value(r, k), (int, float)) for r in records for k in keys)]
    cols = 2
    rows = (len(panels) + 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.6 * rows), squeeze=False)
    bounds = [r["step"] - 0.5 for a, r in zip(records, records[1:]) if a["stage"] != r["stage"]]
    for ax, (title, keys) in zip(axes.flat, panels):
        for key in keys:
            pts = [(r["step"], _value(r, key)) for r in records if isinstance(_value(r, key), (int, float))]
            if pts:
                ax.plot(*zip(*pts), label=key.replace("@", " @ "), linewidth=1.2)
        for b in bounds:
            ax.axvline(b, color="grey", linestyle="--", linewidth=0.8)
        if title == "discriminator accuracy":
            ax.axhline(STRONG_DISC_ACCURACY, color="red", linestyle=":", linewidth=0.8)
            ax.set_ylim(-0.02, 1.02)
        ax.set_title(title, fontsize=10)
        if len(keys) > 1:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    stages = " → ".join(dict.fromkeys(r["stage"] for r in records))
    fig.suptitle(f"{Path(run_dir).name}: {stages} (dashed: stage boundaries)", fontsize=11)
    fig.supxlabel("global step")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
