"""How fast the dashboard opens: its first page, a dataset, and the run page of a long run (2,400 steps
x 30 metrics: the panels' metrics plus others, samples every 10 steps, checkpoints every 100), in a fresh
SQLite studio.

Measurements:
  - handler: the run page's open handler in-process (database queries, downsampling, the Plotly
    figure serialised as JSON), median of repeats after one warm-up;
  - browser: the real app served on loopback and a headless Chromium: from choosing the run in the
    page's run picker to the curves drawn (Gradio's round trip and Plotly's rendering included),
    median of repeats. Skipped when Chromium is missing (--no-browser skips it too).
  - first page: a logged-in browser opens /ui/; the time until the header shows (the server writes it
    into the HTML), until Gradio has mounted the app (its tabs), and until every page-load event has
    answered (no pending indicator), median of repeats, with the HTML's own time;
  - dataset open: choose a 2,000-prompt dataset in the Datasets picker; the time until its summary
    and preview show.
  The machine's load average is recorded with them: these are wall times on a shared machine.

    python bench/ui_load.py [--steps 2400] [--repeats 5] [--no-browser] [--json bench/results/ui_load.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert  # noqa: E402

from bench.common import free_port  # noqa: E402
from gad.training.metric_catalog import M

CHROMIUM = os.environ.get("GAD_CHROMIUM", "/usr/bin/chromium")
PANEL_METRICS = [M.DISC_LOSS, M.DISC_ACCURACY, M.DISC_TEACHER_SCORE, M.DISC_STUDENT_SCORE, M.REWARD_MEAN, M.REWARD_STD,
                 "kl", M.STUDENT_LENGTH, M.TEACHER_LENGTH, "loss", "lr", M.DISC_LR, M.GRAD_NORM, M.DISC_GRAD_NORM,
                 M.STEP_TIME]
OTHER_METRICS = [f"extra_{i:02d}" for i in range(30 - len(PANEL_METRICS))]
USER, PASSWORD = "bench", "bench-password-1"


def seed(ctx, steps: int, name: str) -> int:
    """One succeeded GAD run with `steps` steps of 30 metrics; returns its id."""
    import math
    import random

    from app.db.models import Checkpoint, Run, RunMetric, RunStep, Sample
    from app.db.session import session_scope
    from gad.training.config import RunConfig

    rng = random.Random(0)
    warm = steps // 8
    config = RunConfig(student="org/model", data="data.jsonl", output="runs/bench").model_dump()
    with session_scope(ctx.sessions) as s:
        run = Run(uid=f"bench{steps}", name=name, method="gad", config=config, status="succeeded",
                  stage="adversarial", step=steps, total_steps=steps, output_dir=str(ctx.settings.data_dir / "runs"))
        s.add(run)
        s.flush()
        run_id = run.id
    with ctx.engine.begin() as conn:
        conn.execute(insert(RunStep), [{"run_id": run_id, "step": k, "stage": "warmup" if k <= warm else "adversarial"}
                                       for k in range(1, steps + 1)])
        rows = []
        for name in PANEL_METRICS + OTHER_METRICS:
            base = rng.random()
            for k in range(1, steps + 1):
                spike = 5.0 if k == steps // 2 else 0.0  # one spike the downsampled chart must still show
                rows.append({"run_id": run_id, "name": name, "step": k,
                             "value": base + 0.3 * math.sin(k / 50) + 0.05 * rng.gauss(0, 1) + spike})
        conn.execute(insert(RunMetric), rows)
        conn.execute(insert(Sample), [{"run_id": run_id, "step": k, "stage": "adversarial", "payload": {
            "prompt": f"prompt {k}", "teacher": "teacher answer " * 20,
            "students": [{"text": f"student answer {i} " * 15, "score": rng.random(), "advantage": rng.gauss(0, 1),
                          "finished": True} for i in range(8)]}} for k in range(10, steps + 1, 10)])
        ckpts = [{"run_id": run_id, "step": k, "stage": "adversarial", "path": f"/nowhere/step-{k}"}
                 for k in range(100, steps + 1, 100)]
        if ckpts:  # an empty list would insert one row of defaults
            conn.execute(insert(Checkpoint), ckpts)
    return run_id


def add_user(ctx) -> None:
    from app.db.session import session_scope
    from app.services.users import create_user

    with session_scope(ctx.sessions) as s:
        create_user(s, USER, "researcher", PASSWORD)


def time_handler(ctx, run_id: int, repeats: int) -> dict:
    """The run page's open handler, in-process, output serialised as Gradio sends it."""
    from app.services.chat import ModelCache
    from app.ui.common import Ui
    from app.ui.pages.run_page import RunPage

    page = RunPage(Ui(ctx, ModelCache(2**30)))
    request = SimpleNamespace(username=USER)
    samples, size = [], 0
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        out = page.open(run_id, 0.6, request)
        chart = out[7]
        size = len(chart.plot)
        elapsed = time.perf_counter() - t0
        if i:  # the first call warms imports and caches
            samples.append(elapsed)
    return {"median_s": statistics.median(samples), "max_s": max(samples), "chart_json_bytes": size}


def seed_dataset(ctx, n: int = 2000) -> str:
    """A dataset of `n` prompts with teacher responses; returns its name."""
    from app.db.session import session_scope
    from app.services.datasets import import_dataset

    path = Path(ctx.settings.data_dir) / "bench-prompts.jsonl"
    path.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"Question {i}: " + "why is the sky blue? " * 6,
                                        "response": "Because of Rayleigh scattering. " * 12}) + "\n"
                            for i in range(n)))
    with session_scope(ctx.sessions) as s:
        import_dataset(s, path, name="bench prompts", test_fraction=0.1)
    return "bench prompts"


FIRST_PAGE_JS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  const config = res.find(r => /\\/config(\\?|$)/.test(r.name));
  return {html_s: nav ? nav.responseEnd / 1000 : null, config_s: config ? config.responseEnd / 1000 : null,
          config_bytes: config ? config.encodedBodySize : null};
}"""


def time_pages(url: str, dataset: str, repeats: int) -> dict:
    """The first page and opening a dataset, in a logged-in Chromium (see the module's docstring)."""
    from playwright.sync_api import sync_playwright

    first, mounted, settled, parts, dataset_open = [], [], [], [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=url)
        page = context.new_page()
        page.goto("/login?next=/ui/")
        page.fill("#username", USER)
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        page.locator(".gad-header").wait_for(timeout=120_000)
        for i in range(repeats + 1):
            page = context.new_page()  # a new tab: the browser's cache kept, as for a returning user
            t0 = time.perf_counter()
            page.goto("/ui/", wait_until="commit")
            page.locator(".gad-header").wait_for(timeout=120_000)
            t_header = time.perf_counter() - t0
            page.locator("#main-tabs").wait_for(timeout=120_000)  # Gradio has mounted the app
            t_app = time.perf_counter() - t0
            page.wait_for_function("() => !document.querySelector('.pending, .generating')", timeout=120_000,
                                   polling=20)
            t_settled = time.perf_counter() - t0
            if i:  # the first load warms the server's caches
                first.append(t_header)
                mounted.append(t_app)
                settled.append(t_settled)
                parts.append(page.evaluate(FIRST_PAGE_JS))
                box = page.locator("#dataset-pick input")
                box.click()
                option = page.locator("#dataset-pick [role=option]").filter(has_text=dataset).first
                option.wait_for()
                t0 = time.perf_counter()
                option.click()
                page.locator("#dataset-summary").filter(has_text=dataset).wait_for(timeout=120_000)
                page.wait_for_function("() => document.body.innerText.includes('Question 0:')", timeout=120_000,
                                       polling=20)  # the preview's first row
                dataset_open.append(time.perf_counter() - t0)
            page.close()
        browser.close()
    med = statistics.median
    return {"first_page": {"header_median_s": med(first), "header_max_s": max(first),
                           "app_mounted_median_s": med(mounted),
                           "settled_median_s": med(settled), "settled_max_s": max(settled),
                           "html_median_s": med(p["html_s"] for p in parts if p["html_s"] is not None),
                           "config_median_s": med(p["config_s"] for p in parts if p["config_s"] is not None)
                           if any(p["config_s"] for p in parts) else None,
                           "config_bytes": parts[-1]["config_bytes"]},
            "dataset_open": {"median_s": med(dataset_open), "max_s": max(dataset_open)}}


def serve(ctx):
    """The studio's web app on a loopback port, in a thread; returns (url, stop)."""
    import uvicorn

    from app.api import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(context=ctx), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    def stop():
        server.should_exit = True
        thread.join(timeout=10)
    return f"http://127.0.0.1:{port}", stop


def time_browser(ctx, big: str, small: str, repeats: int) -> dict:
    """Choose the long run in the run page's picker; wait until its curves are drawn. Between two
    measurements a short run is opened, so each measurement replaces a chart that shows something else."""
    from playwright.sync_api import sync_playwright

    url, stop = serve(ctx)
    samples = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync"])
            page = browser.new_context(viewport={"width": 1440, "height": 900},
                                       base_url=url).new_page()
            page.goto("/login?next=/ui/")
            page.fill("#username", USER)
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.locator(".gad-header").wait_for()
            page.locator("#tab-runs-button").click()
            page.locator("#tab-run-button").click()
            page.locator("#run-curves .js-plotly-plot").wait_for(timeout=60_000)  # the newest run opens by itself

            def shows(name: str, long: bool) -> str:
                # The chart is the run's when the header names it and the first trace has that run's length.
                test = "> 100" if long else "< 100"
                return (f"() => {{ const h = document.querySelector('#run-header');"
                        f" const p = document.querySelector('#run-curves .js-plotly-plot');"
                        f" return h && h.innerText.includes({json.dumps(name)}) && p && p.data && p.data.length"
                        f" && p.data[0].y.length {test}; }}")

            def choose(name: str):
                page.locator("#run-pick input").click()
                option = page.locator("#run-pick [role=option]").filter(has_text=name).first
                option.wait_for()
                return option

            for i in range(repeats + 1):
                choose(small).click()
                page.wait_for_function(shows(small, False), timeout=60_000)
                option = choose(big)
                t0 = time.perf_counter()
                option.click()
                page.wait_for_function(shows(big, True), timeout=60_000, polling=10)
                if i:
                    samples.append(time.perf_counter() - t0)
            browser.close()
    finally:
        stop()
    return {"median_s": statistics.median(samples), "max_s": max(samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--pages-only", action="store_true", help="Only the first page and the dataset open.")
    parser.add_argument("--json", default=None, help="Also write the results to this file.")
    ns = parser.parse_args()

    from app.context import make_context
    from app.settings import Settings

    folder = Path(tempfile.mkdtemp(prefix="gad-ui-bench-"))
    ctx = make_context(Settings(GAD_DATA_DIR=folder, DATABASE_URL=f"sqlite:///{folder / 'studio.db'}"))
    t0 = time.perf_counter()
    add_user(ctx)
    small, big = "bench: short run", f"bench: {ns.steps} steps"
    seed(ctx, 40, small)
    run_id = seed(ctx, ns.steps, big)
    dataset = seed_dataset(ctx)
    result = {"steps": ns.steps, "metrics": len(PANEL_METRICS) + len(OTHER_METRICS), "database": "sqlite",
              "seed_s": round(time.perf_counter() - t0, 2), "load_average": os.getloadavg()[0]}
    if not ns.no_browser and Path(CHROMIUM).exists():
        url, stop = serve(ctx)
        try:
            result.update(time_pages(url, dataset, ns.repeats))
        finally:
            stop()
        fp = result["first_page"]
        print(f"first page (load {result['load_average']:.1f}): header {fp['header_median_s']:.2f} s (max "
              f"{fp['header_max_s']:.2f} s), app mounted {fp['app_mounted_median_s']:.2f} s, every load event "
              f"answered {fp['settled_median_s']:.2f} s; HTML "
              f"{fp['html_median_s']:.2f} s, config {fp['config_median_s'] or 0:.2f} s; dataset open "
              f"{result['dataset_open']['median_s']:.2f} s", flush=True)
    if ns.pages_only:
        if ns.json:
            Path(ns.json).write_text(json.dumps(result, indent=2) + "\n")
        ctx.close()
        return
    result["handler"] = time_handler(ctx, run_id, ns.repeats)
    print(f"run page, {ns.steps} steps x {result['metrics']} metrics: handler {result['handler']['median_s']:.3f} s "
          f"(max {result['handler']['max_s']:.3f} s, chart {result['handler']['chart_json_bytes'] / 1024:.0f} KiB)",
          flush=True)
    if not ns.no_browser and Path(CHROMIUM).exists():
        result["browser"] = time_browser(ctx, big, small, ns.repeats)
        print(f"  in Chromium, choose the run -> curves drawn: {result['browser']['median_s']:.3f} s "
              f"(max {result['browser']['max_s']:.3f} s)", flush=True)
    if ns.json:
        Path(ns.json).write_text(json.dumps(result, indent=2) + "\n")
    ctx.close()


if __name__ == "__main__":
    main()
