"""Charts drawn on the server as inline SVG: no JavaScript, nothing fetched, every label escaped.

Each function returns markup for the template. Colours are the outcome colours used across the console
(accepted green, escalated amber, rejected red) and keep their meaning in the legend and the titles
(hovering a bar shows its numbers), so the charts also read without colour.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

OUTCOMES = (("accepted", "#2e7d32"), ("escalated", "#f9a825"), ("rejected", "#c62828"))
BAR_COLOUR = "#417690"  # the admin's own blue
FULL_COLOUR = "#c62828"
UNLIMITED_COLOUR = "#78909c"


def _n(value: float) -> str:
    """A coordinate with one decimal (format_html escapes its arguments to text before formatting)."""
    return f"{value:.1f}"


def _axis_top(value: int) -> int:
    top = 1
    while True:
        for factor in (1, 2, 5):
            if top * factor >= value:
                return top * factor
        top *= 10


def stacked_columns(
    buckets: Sequence[datetime], counts: Sequence[Sequence[int]], *, label_format: str, width: int = 1100
) -> SafeString:
    """A stacked column per bucket (accepted, escalated, rejected from the bottom) with a y-axis scale."""
    height, left, bottom, top_pad = 150, 44, 22, 8
    plot_w, plot_h = width - left - 8, height - bottom - top_pad
    top = _axis_top(max((sum(c) for c in counts), default=0))
    slot = plot_w / max(1, len(buckets))
    bar_w = max(1.0, slot * 0.8)
    parts: list[SafeString] = []
    for i, (start, values) in enumerate(zip(buckets, counts, strict=True)):
        x = left + i * slot + (slot - bar_w) / 2
        y = top_pad + plot_h
        title = f"{start:{label_format}} UTC: " + ", ".join(
            f"{v} {name}" for (name, _), v in zip(OUTCOMES, values, strict=True)
        )
        for (name, colour), value in zip(OUTCOMES, values, strict=True):
            if not value:
                continue
            h = plot_h * value / top
            y -= h
            parts.append(
                format_html(
                    '<rect class="bar-{}" x="{}" y="{}" width="{}" height="{}" fill="{}">'
                    "<title>{}</title></rect>",
                    name,
                    _n(x),
                    _n(y),
                    _n(bar_w),
                    _n(h),
                    colour,
                    title,
                )
            )
    # Grid and y labels at 0, the top, and half of it when that is a whole number (these are counts).
    for fraction in (0.0, 0.5, 1.0) if top % 2 == 0 else (0.0, 1.0):
        y = top_pad + plot_h * (1 - fraction)
        value = top * fraction
        parts.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#ddd"/>'
                '<text x="{}" y="{}" text-anchor="end" class="axis">{}</text>',
                left,
                _n(left + plot_w),
                _n(y),
                _n(y),
                left - 4,
                _n(y + 4),
                f"{value:g}",
            )
        )
    # x labels: first, middle and last bucket (the ends anchored inwards, so they are not cut off).
    last = len(buckets) - 1
    for i in sorted({0, len(buckets) // 2, last}):
        if i < 0:
            continue
        x = left + i * slot + slot / 2
        anchor = "start" if i == 0 and last > 0 else "end" if i == last and last > 0 else "middle"
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="{}" class="axis">{}</text>',
                _n(left + i * slot if anchor == "start" else left + (i + 1) * slot if anchor == "end" else x),
                height - 6,
                anchor,
                f"{buckets[i]:{label_format}}",
            )
        )
    return format_html(
        '<svg class="chart" role="img" viewBox="0 0 {} {}" width="100%" preserveAspectRatio="xMinYMin meet">'
        "{}</svg>",
        width,
        height,
        mark_safe("".join(parts)),  # every part was built by format_html
    )


def hbars(
    rows: Sequence[tuple[str, int, int | None, str]], *, width: int = 520, unlimited_colour: str = BAR_COLOUR
) -> SafeString:
    """Horizontal bars: (label, value, limit or None, text shown at the bar's end).

    With a limit the bar is the share of it (red from 90 %); without, a bar of ``unlimited_colour`` on
    the scale of the largest value or limit in the chart.
    """
    if not rows:
        return format_html('<p class="empty">{}</p>', "nothing to show")
    row_h, label_w, text_w = 22, 150, 150
    plot_w = width - label_w - text_w
    largest = max(max(v, limit or 0) for _, v, limit, _ in rows) or 1
    parts: list[SafeString] = []
    for i, (label, value, limit, text) in enumerate(rows):
        y = i * row_h + 4
        share = min(1.0, value / limit) if limit else value / largest
        colour = (FULL_COLOUR if value >= 0.9 * limit else BAR_COLOUR) if limit else unlimited_colour
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="end" class="label">{}</text>'
                '<rect x="{}" y="{}" width="{}" height="14" fill="#eee"/>'
                '<rect class="value" x="{}" y="{}" width="{}" height="14" fill="{}">'
                "<title>{}: {}</title></rect>"
                '<text x="{}" y="{}" class="value-text">{}</text>',
                label_w - 6,
                y + 12,
                label,
                label_w,
                y,
                plot_w if limit else 0,
                label_w,
                y,
                _n(plot_w * share),
                colour,
                label,
                text,
                label_w + plot_w + 6,
                y + 12,
                text,
            )
        )
    return format_html(
        '<svg class="chart" role="img" viewBox="0 0 {} {}" width="{}">{}</svg>',
        width,
        len(rows) * row_h + 6,
        width,
        mark_safe("".join(parts)),  # every part was built by format_html
    )


def legend() -> SafeString:
    """The outcome colours, for the decision charts."""
    return format_html(
        '<p class="legend">{}</p>',
        format_html_join(
            " ",
            '<span><svg width="12" height="12"><rect width="12" height="12" fill="{}"/></svg> {}</span>',
            ((colour, name) for name, colour in OUTCOMES),
        ),
    )
