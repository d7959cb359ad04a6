"""The HTML report: one self-contained file, charts drawn as inline SVG, nothing fetched.

No CDN, no script, no font: the file opens the same offline, in a mail
attachment or a CI artefact, years later. Three charts (latency percentiles,
throughput against sessions, RSS against sessions, and RSS per churn cycle when
churn ran) and the full table of figures with the ratios.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

COLOURS = {
    "triolet": "#2563eb",
    "triolet_recorded": "#93c5fd",
    "chainlit": "#dc2626",
    "bare": "#6b7280",
}
EXTRA_COLOURS = ("#059669", "#d97706", "#7c3aed", "#db2777")

W, H = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 30, 50


def _colour(name: str, index: int) -> str:
    return COLOURS.get(name, EXTRA_COLOURS[index % len(EXTRA_COLOURS)])


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _scale(lo: float, hi: float, log: bool) -> tuple[Any, list[float]]:
    """A value-to-y function and tick values for the plot area."""
    if log:
        lo, hi = 10 ** math.floor(math.log10(lo)), 10 ** math.ceil(math.log10(hi))
        ticks = [10**e for e in range(round(math.log10(lo)), round(math.log10(hi)) + 1)]

        def y(v: float) -> float:
            frac = (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
            return TOP + (H - TOP - BOTTOM) * (1 - frac)

        return y, ticks
    hi = hi * 1.1 or 1.0
    step = 10 ** math.floor(math.log10(hi / 5)) if hi > 0 else 1
    while hi / step > 8:
        step *= 2
    ticks = [i * step for i in range(int(hi / step) + 1)]

    def y_lin(v: float) -> float:
        return TOP + (H - TOP - BOTTOM) * (1 - v / hi)

    return y_lin, ticks


def _frame(title: str, y_label: str, ticks: list[float], y: Any) -> list[str]:
    mid = (H - BOTTOM + TOP) / 2
    parts = [
        f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<text x="{W / 2}" y="18" text-anchor="middle" font-weight="bold">'
        f"{html.escape(title)}</text>",
        f'<text x="14" y="{mid}" transform="rotate(-90 14 {mid})" '
        f'text-anchor="middle" font-size="12">{html.escape(y_label)}</text>',
    ]
    for tick in ticks:
        ty = y(tick)
        parts.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#e5e7eb"/>'
            f'<text x="{LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end" font-size="11">'
            f"{_fmt(tick)}</text>"
        )
    parts.append(
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{H - BOTTOM}" stroke="#111"/>'
        f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{H - BOTTOM}" y2="{H - BOTTOM}" stroke="#111"/>'
    )
    return parts


def _legend(names: Sequence[str]) -> list[str]:
    parts = []
    for i, name in enumerate(names):
        x = LEFT + 10 + i * 110
        parts.append(
            f'<rect x="{x}" y="{H - 18}" width="12" height="12" fill="{_colour(name, i)}"/>'
            f'<text x="{x + 16}" y="{H - 8}" font-size="12">{html.escape(name)}</text>'
        )
    return parts


def bar_chart(
    title: str,
    y_label: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
) -> str:
    """Grouped bars: one group per category, one bar per series (log scale: spans differ)."""
    values = [v for vs in series.values() for v in vs if v is not None and v > 0]
    if not values:
        return ""
    y, ticks = _scale(min(values), max(values), log=True)
    parts = _frame(title, y_label, ticks, y)
    group_w = (W - LEFT - RIGHT) / max(1, len(categories))
    bar_w = group_w * 0.8 / max(1, len(series))
    for c, category in enumerate(categories):
        gx = LEFT + c * group_w
        parts.append(
            f'<text x="{gx + group_w / 2:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle" '
            f'font-size="12">{html.escape(category)}</text>'
        )
        for s, (name, vs) in enumerate(series.items()):
            value = vs[c] if c < len(vs) else None
            if value is None or value <= 0:
                continue
            x = gx + group_w * 0.1 + s * bar_w
            top = y(value)
            parts.append(
                f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar_w * 0.9:.1f}" '
                f'height="{H - BOTTOM - top:.1f}" fill="{_colour(name, s)}">'
                f"<title>{html.escape(name)} {html.escape(category)}: {_fmt(value)}</title></rect>"
            )
    parts += _legend(list(series))
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    title: str, x_label: str, y_label: str, series: Mapping[str, Sequence[tuple[float, float]]]
) -> str:
    """Lines with markers, one per series; x spread evenly over the distinct x values."""
    points = [p for ps in series.values() for p in ps]
    if not points:
        return ""
    xs = sorted({x for x, _ in points})
    y, ticks = _scale(0, max(v for _, v in points), log=False)
    parts = _frame(title, y_label, ticks, y)

    def x_of(value: float) -> float:
        if len(xs) == 1:
            return (LEFT + W - RIGHT) / 2
        return LEFT + 20 + (W - LEFT - RIGHT - 40) * xs.index(value) / (len(xs) - 1)

    for value in xs:
        parts.append(
            f'<text x="{x_of(value):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle" '
            f'font-size="12">{_fmt(value)}</text>'
        )
    parts.append(
        f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - BOTTOM + 32}" text-anchor="middle" '
        f'font-size="12">{html.escape(x_label)}</text>'
    )
    for s, (name, ps) in enumerate(series.items()):
        colour = _colour(name, s)
        coords = [(x_of(px), y(py)) for px, py in sorted(ps)]
        if len(coords) > 1:
            path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        for (cx, cy), (px, py) in zip(coords, sorted(ps), strict=True):
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{colour}">'
                f"<title>{html.escape(name)} @ {_fmt(px)}: {_fmt(py)}</title></circle>"
            )
    parts += _legend(list(series))
    parts.append("</svg>")
    return "".join(parts)


def _charts(points: Sequence[Mapping[str, Any]]) -> list[str]:
    charts = []
    echo = [p for p in points if p["scenario"] == "echo" and "p50_ms" in p]
    if echo:
        biggest = max(p["sessions"] for p in echo)
        at = {p["system"]: p for p in echo if p["sessions"] == biggest}
        names = [("p50", "p50_ms"), ("p90", "p90_ms"), ("p99", "p99_ms"), ("p99.9", "p99_9_ms")]
        charts.append(
            bar_chart(
                f"echo latency percentiles, {biggest} sessions",
                "ms (log scale)",
                [label for label, _ in names],
                {system: [p.get(key) for _, key in names] for system, p in at.items()},
            )
        )
    for scenario, key, label in (
        ("echo", "msgs_per_s", "messages/s"),
        ("stream", "msgs_per_s", "replies/s"),
    ):
        series: dict[str, list[tuple[float, float]]] = {}
        for p in points:
            if p["scenario"] == scenario and isinstance(p.get(key), int | float):
                series.setdefault(p["system"], []).append((p["sessions"], p[key]))
        if series:
            charts.append(
                line_chart(f"{scenario}: throughput against sessions", "sessions", label, series)
            )
    rss: dict[str, list[tuple[float, float]]] = {}
    for p in points:
        if p["scenario"] == "idle" and isinstance(p.get("rss_after_mb"), int | float):
            rss.setdefault(p["system"], []).append((p["sessions"], p["rss_after_mb"]))
    if rss:
        charts.append(line_chart("idle: server RSS against open sessions", "sessions", "MiB", rss))
    churn: dict[str, list[tuple[float, float]]] = {}
    for p in points:
        if p["scenario"] == "churn" and p.get("rss_after_cycle_mb"):
            name = f"{p['system']} ({p['sessions']})"
            churn[name] = [(i + 1, v) for i, v in enumerate(p["rss_after_cycle_mb"])]
    if churn:
        charts.append(line_chart("churn: server RSS after each cycle", "cycle", "MiB", churn))
    return [c for c in charts if c]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return _fmt(value)
    if isinstance(value, list | dict):
        return html.escape(str(value))
    return html.escape("" if value is None else str(value))


def _table(points: Sequence[Mapping[str, Any]]) -> str:
    skip = {"scenario", "system", "sessions", "ratios", "recorded_ratios", "errors"}
    keys: list[str] = []
    for p in points:
        keys += [k for k in p if k not in skip and k not in keys and not isinstance(p[k], dict)]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ["scenario", "system", "sessions", *keys])
    rows = []
    for p in points:
        cells = [p["scenario"], p["system"], p["sessions"], *(p.get(k) for k in keys)]
        rows.append("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _ratio_table(points: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for p in points:
        pairs: list[tuple[str, str, Mapping[str, Any]]] = []
        if p["system"] == "triolet_recorded":
            pairs += [
                ("triolet_recorded", other, r) for other, r in (p.get("ratios") or {}).items()
            ]
        else:
            pairs.append(("triolet", p["system"], p.get("ratios") or {}))
            pairs.append(("triolet_recorded", p["system"], p.get("recorded_ratios") or {}))
        for ours, theirs, values in pairs:
            for key, value in values.items():
                if value is not None:
                    rows.append(
                        f"<tr><td>{_cell(p['scenario'])}</td><td>{p['sessions']}</td>"
                        f"<td>{_cell(ours)} ÷ {_cell(theirs)}</td><td>{_cell(key)}</td>"
                        f"<td>{_cell(value)}</td></tr>"
                    )
    if not rows:
        return ""
    return (
        "<h2>Ratios</h2><p>Triolet's figure divided by the other system's, same run. "
        "<b>triolet</b> runs with <code>[storage] record = false</code> (nothing stored, like "
        "Chainlit without a data layer and the bare floor; <code>durable</code> excepted); "
        "<b>triolet_recorded</b> stores every chat (the default configuration).</p>"
        "<table><thead><tr><th>scenario</th><th>sessions</th><th>ratio</th><th>figure</th>"
        f"<th>value</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _goal_table(goals: Sequence[Mapping[str, Any]]) -> str:
    if not goals:
        return ""
    rows = "".join(
        f"<tr><td>{_cell(g['goal'])}</td><td>{_cell(g['wanted'])}</td><td>{_cell(g['value'])}</td>"
        f"<td>{_cell(g['floor'])}</td><td>{_cell(g['verdict'])}</td></tr>"
        for g in goals
    )
    return (
        "<h2>Goals</h2><p>The project's published goals (docs/BENCHMARKS.md), judged on this "
        "run. <b>bare floor</b> is the bare hypercorn echo's own ratio to Chainlit: where even "
        "it misses a goal, the goal is <i>out of reach here</i> (Chainlit's echo rate is set "
        "by its own sleeps, every other server's by this machine's speed).</p>"
        "<table><thead><tr><th>goal</th><th>wanted</th><th>triolet</th><th>bare floor</th>"
        f"<th>verdict</th></tr></thead><tbody>{rows}</tbody></table>"
    )


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #111; }
table { border-collapse: collapse; font-size: 12px; margin: 1rem 0; }
th, td { border: 1px solid #d1d5db; padding: 3px 6px; text-align: right; }
th { background: #f3f4f6; } td:first-child, td:nth-child(2) { text-align: left; }
svg { margin: 0.5rem 1rem 1rem 0; font-family: system-ui, sans-serif; }
"""


def render(result: Mapping[str, Any]) -> str:
    """The whole report for the suite's JSON result (``meta`` and ``points``)."""
    meta = result.get("meta", {})
    points = result.get("points", [])
    facts = "".join(f"<li><b>{html.escape(str(k))}</b>: {_cell(v)}</li>" for k, v in meta.items())
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Triolet benchmarks</title>"
        f"<style>{STYLE}</style></head><body>"
        "<h1>Triolet benchmarks</h1>"
        f"<ul>{facts}</ul>"
        f"<div>{''.join(_charts(points))}</div>"
        f"{_goal_table(result.get('goals', []))}"
        f"{_ratio_table(points)}"
        f"<h2>All figures</h2>{_table(points)}"
        "</body></html>"
    )
