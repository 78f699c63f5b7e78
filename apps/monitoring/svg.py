"""Server-side SVG charts for the dashboard: no JavaScript, no CDN, nothing to load.

Only numbers and escaped labels go into the markup, so the output is safe to mark safe.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

STROKE = "#2f6fb0"
FILL = "#e6f0fb"
ALERT = "#b3261e"


def _points(values: Sequence[float], width: float, height: float, pad: float) -> list[tuple]:
    top = max(values) or 1
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    return [
        (round(pad + i * step, 1), round(height - pad - (v / top) * (height - 2 * pad), 1))
        for i, v in enumerate(values)
    ]


def sparkline(values: Sequence[float], *, label: str = "", width: int = 180,
              height: int = 36) -> SafeString:
    """A filled sparkline of ``values`` (one per day), its last point marked."""
    if not values:
        return mark_safe("")  # noqa: S308 - empty string
    pts = _points(values, width, height, 3)
    line = " ".join(f"{x},{y}" for x, y in pts)
    area = f"{pts[0][0]},{height - 3} {line} {pts[-1][0]},{height - 3}"
    last_x, last_y = pts[-1]
    title = escape(label or f"{sum(values):,.0f} in {len(values)} days")
    return mark_safe(  # noqa: S308 - numbers and an escaped title only
        f'<svg class="ix-spark" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{title}</title>"
        f'<polygon points="{area}" fill="{FILL}" stroke="none"/>'
        f'<polyline points="{line}" fill="none" stroke="{STROKE}" stroke-width="1.5"/>'
        f'<circle cx="{last_x}" cy="{last_y}" r="2.5" fill="{STROKE}"/></svg>'
    )


def line_chart(series: Sequence[tuple[str, float]], *, label: str, width: int = 640,
               height: int = 160) -> SafeString:
    """A line over labelled points (roster versions), with the first, last and peak labelled."""
    if not series:
        return mark_safe("")  # noqa: S308 - empty string
    values = [v for _, v in series]
    pad = 24
    pts = _points(values, width, height, pad)
    line = " ".join(f"{x},{y}" for x, y in pts)
    marks = []
    peak = values.index(max(values))
    for i in sorted({0, len(values) - 1, peak}):
        x, y = pts[i]
        name, value = series[i]
        marks.append(
            f'<circle cx="{x}" cy="{y}" r="3" fill="{STROKE}"/>'
            f'<text x="{x}" y="{max(y - 8, 10)}" font-size="11" text-anchor="middle" '
            f'fill="#333">{escape(f"{value:,.0f}")}</text>'
            f'<text x="{x}" y="{height - 6}" font-size="10" text-anchor="middle" '
            f'fill="#666">{escape(name)}</text>'
        )
    return mark_safe(  # noqa: S308 - numbers and escaped labels only
        f'<svg class="ix-chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>"
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        f'stroke="#ccc"/>'
        f'<polyline points="{line}" fill="none" stroke="{STROKE}" stroke-width="2"/>'
        + "".join(marks) + "</svg>"
    )


def bar_chart(series: Sequence[tuple[str, float]], *, label: str, width: int = 640,
              height: int = 140, highlight: set[int] | None = None) -> SafeString:
    """Bars over labelled slots (hours of the day); ``highlight`` indexes are drawn in red."""
    if not series:
        return mark_safe("")  # noqa: S308 - empty string
    pad, top = 20, max(v for _, v in series) or 1
    slot = (width - 2 * pad) / len(series)
    bars = []
    for i, (name, value) in enumerate(series):
        h = (value / top) * (height - 2 * pad)
        x = pad + i * slot
        colour = ALERT if highlight and i in highlight else STROKE
        bars.append(
            f'<rect x="{x + 1:.1f}" y="{height - pad - h:.1f}" width="{max(slot - 2, 1):.1f}" '
            f'height="{h:.1f}" fill="{colour}"><title>{escape(name)}: '
            f'{escape(f"{value:,.0f}")}</title></rect>'
        )
        if i % 3 == 0:
            bars.append(f'<text x="{x + slot / 2:.1f}" y="{height - 5}" font-size="10" '
                        f'text-anchor="middle" fill="#666">{escape(name)}</text>')
    return mark_safe(  # noqa: S308 - numbers and escaped labels only
        f'<svg class="ix-chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>" + "".join(bars) + "</svg>"
    )
