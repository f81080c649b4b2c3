"""Server-rendered SVG charts for the dashboard: no JavaScript library, no CDN. Every label is escaped."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    values: Sequence[int]


def _nice_max(value: int) -> int:
    """A round axis maximum at or above value: 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def stacked_columns(
    days: Sequence[dt.date],
    series: Sequence[Series],
    *,
    title: str,
    width: int = 560,
    height: int = 180,
    chart_id: str = "",
    legend: bool = True,
) -> SafeString:
    """One column per day, the series stacked bottom-up; an axis with its maximum, first/last day, and a legend."""
    left, right, top, bottom = 40, 8, 22, (34 if legend else 16)
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(s.values[index] for s in series) for index in range(len(days))]
    top_value = _nice_max(max(totals, default=0))
    slot = plot_w / max(len(days), 1)
    bar = max(slot * 0.75, 1.0)
    parts: list[str] = [
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {} {}" width="{}" '
            'height="{}"{}><title>{}</title>',
            width,
            height,
            width,
            height,
            format_html(' id="{}"', chart_id) if chart_id else "",
            title,
        ),
        format_html('<text x="{}" y="14" class="chart-title">{}</text>', left, title),
        format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/>', left, top + plot_h, left + plot_w, top + plot_h
        ),
        format_html('<text x="{}" y="{}" class="tick" text-anchor="end">{}</text>', left - 4, top + 8, top_value),
        format_html('<text x="{}" y="{}" class="tick" text-anchor="end">0</text>', left - 4, top + plot_h),
    ]
    for index, day in enumerate(days):
        x = left + index * slot + (slot - bar) / 2
        y = float(top + plot_h)
        for s in series:
            value = s.values[index]
            if value <= 0:
                continue
            h = plot_h * value / top_value
            y -= h
            parts.append(
                format_html(
                    '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {} {}</title></rect>',
                    f"{x:.1f}",
                    f"{y:.1f}",
                    f"{bar:.1f}",
                    f"{h:.1f}",
                    s.color,
                    day.isoformat(),
                    value,
                    s.label,
                )
            )
    if days:
        parts.append(
            format_html(
                '<text x="{}" y="{}" class="tick">{}</text>', left, top + plot_h + 12, days[0].strftime("%d %b")
            )
        )
        parts.append(
            format_html(
                '<text x="{}" y="{}" class="tick" text-anchor="end">{}</text>',
                left + plot_w,
                top + plot_h + 12,
                days[-1].strftime("%d %b"),
            )
        )
    x = float(left)
    for s in series if legend else []:
        parts.append(
            format_html(
                '<rect x="{}" y="{}" width="9" height="9" fill="{}"/><text x="{}" y="{}" class="legend">{} ({})</text>',
                f"{x:.0f}",
                height - 11,
                s.color,
                f"{x + 12:.0f}",
                height - 3,
                s.label,
                sum(s.values),
            )
        )
        x += 12 + 5.6 * (len(s.label) + len(str(sum(s.values))) + 3) + 8
    parts.append("</svg>")
    return mark_safe("".join(str(part) for part in parts))  # noqa: S308 - every value above went through format_html
