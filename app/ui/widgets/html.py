"""Small HTML pieces: status badges, stat cards, progress bars, alarms, tables, and the formatting of
numbers, durations and times. Everything user-provided goes through `esc` (prompts and responses
are arbitrary text)."""

from __future__ import annotations

import html
from datetime import UTC, datetime


def esc(value) -> str:
    return html.escape("" if value is None else str(value))


def badge(status: str | None) -> str:
    status = status or "-"
    return f'<span class="badge st-{esc(status)}">{esc(status)}</span>'


def card(key: str, value, sub: str | None = None) -> str:
    return (f'<div class="card"><div class="k">{esc(key)}</div><div class="v">{esc(value)}</div>'
            + (f'<div class="s">{esc(sub)}</div>' if sub else "") + "</div>")


def cards(items: list[tuple]) -> str:
    return '<div class="cards">' + "".join(card(*it) for it in items) + "</div>"


def pbar(fraction: float | None, *, done: bool = False, indeterminate: bool = False) -> str:
    cls = "pbar" + (" done" if done else "") + (" indet" if indeterminate else "")
    pct = 0 if fraction is None else max(0.0, min(1.0, fraction)) * 100
    return f'<div class="{cls}"><div style="width:{pct:.1f}%"></div></div>'


def alarms(items: list[dict]) -> str:
    return "".join(f'<div class="alarm"><b>{esc(a["kind"].replace("_", " "))}</b>{esc(a["message"])}</div>'
                   for a in items)


def table(headers: list[str], rows: list[list], *, num: set[int] = frozenset(), raw: set[int] = frozenset(),
          empty: str = "nothing yet") -> str:
    """An HTML table; cells in `raw` columns are trusted HTML (badges, bars), the rest are escaped."""
    if not rows:
        return f'<div class="gad-hint">{esc(empty)}</div>'
    head = "".join(f'<th class="{"num" if i in num else ""}">{esc(h)}</th>' for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(
        f'<td class="{"num" if i in num else ""}">{c if i in raw else esc(c)}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows)
    return (f'<div class="tablewrap"><table class="gad"><thead><tr>{head}</tr></thead>'
            f'<tbody>{body}</tbody></table></div>')


def num(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        if abs(value) >= 1000 or value == int(value) and abs(value) >= 10:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def ago(moment: datetime | None) -> str:
    if moment is None:
        return "–"
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=UTC)
    return duration((datetime.now(UTC) - moment).total_seconds()) + " ago"


def when(moment: datetime | None) -> str:
    if moment is None:
        return "–"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def error_box(message: str) -> str:
    return f'<div class="errbox" role="alert">{esc(message)}</div>'


def ok_box(message: str) -> str:
    return f'<div class="okbox">{esc(message)}</div>'


def notes(lines: list[str]) -> str:
    return "".join(f'<div class="note">{esc(line)}</div>' for line in lines)


def histogram_svg(hist: dict, title: str, xlabel: str, color: str = "#ea580c") -> str:
    """A length histogram as inline SVG bars: a dataset's page needs no charting library (loading Plotly
    took most of the time a dataset took to open)."""
    edges, counts = hist.get("edges") or [], hist.get("counts") or []
    head = f'<div class="gad-h" style="font-size:13px">{esc(title)}'
    if not counts:
        return head + '</div><div class="gad-hint">no data</div>'
    mean = hist.get("mean")
    head += (f' <span class="gad-hint">(mean {mean:.0f} {esc(xlabel)})</span>' if mean else "") + "</div>"
    width, height, top = 100.0 / len(counts), 120, max(counts) or 1
    bars = "".join(
        f'<rect x="{i * width + width * 0.04:.3f}%" y="{height - height * c / top:.1f}" width="{width * 0.92:.3f}%" '
        f'height="{height * c / top:.1f}" fill="{color}"><title>{edges[i]:.0f}–{edges[i + 1]:.0f} {esc(xlabel)}: '
        f'{c:,}</title></rect>' for i, c in enumerate(counts))
    axis = (f'<div style="display:flex;justify-content:space-between" class="gad-hint"><span>{edges[0]:.0f}</span>'
            f'<span>{esc(xlabel)} · highest bar {top:,}</span><span>{edges[-1]:.0f}</span></div>')
    return (head + f'<svg width="100%" height="{height}" preserveAspectRatio="none" role="img" '
            f'aria-label="{esc(title)}">{bars}</svg>' + axis)
