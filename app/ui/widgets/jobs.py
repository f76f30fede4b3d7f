"""A job's live panel (teacher collection, evaluation, study generation): status, progress, rate, ETA,
outcomes, tokens and cost, and the failure reasons. Rendered from services.jobs.job_view."""

from __future__ import annotations

from datetime import UTC

from app.enums import RunStatus
from app.ui.widgets.html import ago, badge, cards, duration, esc, num, pbar, table, when


def is_live(view: dict | None) -> bool:
    return view is not None and view["status"] in (RunStatus.queued, RunStatus.running)


def job_panel(view: dict | None, what: str = "job") -> str:
    if view is None:
        return f'<div class="gad-hint">No {esc(what)} yet.</div>'
    stats = view.get("stats") or {}
    status = view["status"]
    total, done = view.get("total"), view.get("done") or 0
    elapsed = stats.get("elapsed_s")
    head = (f'<div style="display:flex;gap:10px;align-items:center;margin-bottom:6px">'
            # Job ids are shared by every kind of job: say it is the job's id, not the n-th collection.
            f'<span class="gad-h">{esc(what.capitalize())}</span><span class="gad-hint">job #{view["id"]}</span>'
            f'{badge(status)}'
            f'<span class="gad-hint">started {esc(when(view.get("started_at") or view.get("created_at")))}</span>'
            '</div>')
    if status == RunStatus.paused and view.get("message"):  # the spend and the cap: raise it to resume
        head += f'<div class="alarm"><b>paused</b> {esc(view["message"].removeprefix("paused: "))}</div>'
    if status == RunStatus.queued:
        return head + pbar(None, indeterminate=True) + '<div class="gad-hint">waiting for a worker…</div>'
    bar = pbar(1.0 if status == RunStatus.succeeded else view.get("progress"), done=status == RunStatus.succeeded,
               indeterminate=status == RunStatus.running and not total)
    if not total and not stats:  # a job that reports no counts (evaluation, study generation): state and time
        end = view.get("finished_at")
        took = f" in {duration(_seconds(view.get('started_at'), end))}" if end and view.get("started_at") else ""
        text = {RunStatus.running: f"working… started {ago(view.get('started_at'))}",
                RunStatus.succeeded: f"finished{took}"}.get(status, status)
        out = head + bar + f'<div class="gad-hint">{esc(text)}</div>'
        if view.get("error"):
            out += f'<div class="alarm"><b>failed</b>{esc(view["error"])}</div>'
        return out
    items = [("done", f"{done:,}" + (f" / {total:,}" if total else ""),
              f"{100 * view['progress']:.0f}%" if total else None)]
    if stats.get("rate_per_s") is not None:
        items.append(("rate", f"{stats['rate_per_s']:.1f}/s", None))
    if view.get("eta_seconds") is not None:
        items.append(("ETA", duration(view["eta_seconds"]), None))
    elif elapsed is not None:
        items.append(("elapsed", duration(elapsed), None))
    if "ok" in stats:
        items.append(("answered", f"{stats.get('ok', 0):,}", f"{stats.get('cached', 0):,} from cache"))
        items.append(("failed", f"{stats.get('failed', 0):,}", f"{stats.get('refused', 0):,} refused"))
        items.append(("tokens", f"{stats.get('prompt_tokens', 0) + stats.get('completion_tokens', 0):,}",
                      f"{stats.get('prompt_tokens', 0):,} in · {stats.get('completion_tokens', 0):,} out"))
    items.append(("cost", f"${view.get('cost') or 0:.4f}", f"{stats.get('retries', 0)} retries" if stats else None))
    out = head + bar + cards(items)
    reasons = stats.get("reasons") or []
    if reasons:
        out += '<div class="lbl">failures by reason</div>' + table(
            ["reason", "prompts"], [[r["reason"], r["count"]] for r in reasons], num={1})
    if view.get("error"):
        out += f'<div class="alarm"><b>failed</b>{esc(view["error"])}</div>'
    if status == RunStatus.succeeded and view.get("result"):
        res = view["result"]
        if "ok" in res:
            out += (f'<div class="okbox">Finished: {num(res.get("ok"))} answered, {num(res.get("failed"))} failed, '
                    f'{num(res.get("refused"))} refused.</div>')
    return out


def _seconds(start, end) -> float:

    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return (end - start).total_seconds()


def projection_panel(p: dict | None) -> str:
    """What a launch would send its paid endpoint (services.costs): requests, tokens, cost, assumptions."""
    if not p:
        return ""
    if not p["requests"]:
        cached = f' ({num(p["cached"])} answers cached)' if p["cached"] else ""
        return f'<div class="gad-hint">Projected: nothing to pay{cached}. ' \
               f'{esc("; ".join(p["assumptions"][-1:]).capitalize())}.</div>'
    cost = f'${p["cost_max_usd"]:.4f}' if p["priced"] else "unpriced"
    out = '<div class="lbl">projected before launch</div>' + cards([
        ("requests", f'{p["requests"]:,}', f'{p["cached"]:,} cached (free)'),
        ("prompt tokens", f'≈{p["prompt_tokens"]:,}', None),
        ("completion tokens", f'≤{p["completion_tokens_max"]:,}', None),
        ("cost", f"≤{cost}", f'${p["price_prompt"]}/M in · ${p["price_completion"]}/M out')])
    return out + f'<div class="gad-hint">{esc("; ".join(p["assumptions"]))}</div>'


def upload_progress(view: dict, shown: str, note: str = "") -> str:
    """An upload's import job while it works: its phase (reading the file, then writing the prompts),
    the share done and the ETA."""
    stats = view.get("stats") or {}
    phase = stats.get("phase")
    if view["status"] == RunStatus.queued:
        text = "stored; waiting for a worker to read it…"
    elif phase == "parse":
        text = f"checking: {_size(stats.get('bytes', 0))} of {_size(stats.get('total_bytes', 0))} read"
    elif phase == "insert":
        text = f"checked; writing {stats.get('total_prompts', 0):,} prompts…"
    else:
        text = "starting…"
    eta = f" · ETA {duration(view['eta_seconds'])}" if view.get("eta_seconds") is not None else ""
    bar = pbar(view.get("progress") if view["status"] == RunStatus.running else None,
               indeterminate=view["status"] == RunStatus.queued)
    extra = f'<div class="gad-hint">{esc(note)}</div>' if note else ""
    return (f'<div class="gad-h">Importing {esc(shown)} <span class="gad-hint">job #{view["id"]}</span></div>'
            + bar + f'<div class="gad-hint">{esc(text)}{esc(eta)}</div>' + extra)


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB"):
        if n < 1000 or unit == "MB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} MB"

