"""Stats drawn on the server as SVG: stacked bars per day by outcome, and bars per
template. Pure: counts in, markup out (every label escaped)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from html import escape

from services.api.schemas import DailyCount

COLOURS = {
    "delivered": "#2e7d32",
    "bounced": "#c62828",
    "failed": "#6a1b9a",
    "deferred": "#f9a825",
    "complained": "#d84315",
    "suppressed": "#546e7a",
    "rejected": "#8d6e63",
    "opened": "#1565c0",
    "clicked": "#00838f",
}
OTHER = "#9e9e9e"


def _colour(outcome: str) -> str:
    return COLOURS.get(outcome, OTHER)


def per_day(daily: Iterable[DailyCount], width: int = 720, height: int = 220) -> str:
    days: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in daily:
        days[row.day.isoformat()][row.outcome] += row.count
    if not days:
        return _empty(width, "no counts in this window")
    top = max(sum(c.values()) for c in days.values()) or 1
    plot_h, step = height - 40, (width - 180) / len(days)
    bar_w = max(2.0, min(48.0, step * 0.7))
    parts = [f'<text x="4" y="14" class="axis">{top}</text>']
    for i, (day, counts) in enumerate(sorted(days.items())):
        x, y = 36 + i * step, float(height - 24)
        for outcome, n in sorted(counts.items()):
            h = plot_h * n / top
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{_colour(outcome)}"><title>{escape(day)} {escape(outcome)}: '
                f"{n}</title></rect>"
            )
        parts.append(f'<text x="{x:.1f}" y="{height - 8}" class="axis">{escape(day[5:])}</text>')
    for i, outcome in enumerate(sorted({o for c in days.values() for o in c})):
        x = width - 130
        parts.append(f'<rect x="{x}" y="{6 + i * 16}" width="10" height="10" '
                     f'fill="{_colour(outcome)}"/><text x="{x + 14}" y="{15 + i * 16}" '
                     f'class="label">{escape(outcome)}</text>')  # fmt: skip
    return _svg(width, height, "events per day by outcome", parts)


def per_template(daily: Iterable[DailyCount], width: int = 720) -> str:
    totals: dict[str, int] = defaultdict(int)
    for row in daily:
        totals[row.template or "(literal)"] += row.count
    if not totals:
        return _empty(width, "no templates in this window")
    top = max(totals.values()) or 1
    height = 24 * len(totals) + 8
    parts = []
    for i, (name, n) in enumerate(sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))):
        y, w = 4 + i * 24, (width - 260) * n / top
        parts.append(
            f'<text x="0" y="{y + 15}" class="label">{escape(name[:28])}</text>'
            f'<rect x="200" y="{y}" width="{w:.1f}" height="18" fill="#1565c0">'
            f"<title>{escape(name)}: {n}</title></rect>"
            f'<text x="{206 + w:.1f}" y="{y + 15}" class="label">{n}</text>'
        )
    return _svg(width, height, "events per template", parts)


def _svg(width: int, height: int, title: str, parts: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}"'
        f' width="{width}" height="{height}"><title>{escape(title)}</title>'
        + "".join(parts)
        + "</svg>"
    )


def _empty(width: int, text: str) -> str:
    return _svg(width, 40, text, [f'<text x="4" y="24" class="label">{escape(text)}</text>'])
