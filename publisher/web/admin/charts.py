"""Simple charts as geometry for inline SVG drawn by the templates (no script, no library)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    """One bar: its box, label and value."""

    x: float
    y: float
    width: float
    height: float
    label: str
    value: int
    css_class: str = ""


@dataclass(frozen=True)
class BarChart:
    """Horizontal bars, one per labelled value."""

    width: int
    height: int
    bars: list[Bar]


def bar_chart(items: Sequence[tuple[str, int]], *, width: int = 480, row: int = 26) -> BarChart:
    """Lay out horizontal bars scaled to the largest value (labels on the left)."""
    label_width = 130
    top = max((value for _label, value in items), default=0) or 1
    span = width - label_width - 70
    bars = [
        Bar(
            x=label_width,
            y=index * row + 4,
            width=max(1.0, span * value / top) if value else 0.0,
            height=row - 8,
            label=label,
            value=value,
            css_class=f"bar-{label}",
        )
        for index, (label, value) in enumerate(items)
    ]
    return BarChart(width=width, height=max(row, row * len(items)), bars=bars)


@dataclass(frozen=True)
class LineChart:
    """A line over days: the SVG polyline points and a few axis labels."""

    width: int
    height: int
    points: str
    columns: list[Bar]
    top_label: str
    first_label: str
    last_label: str


def line_chart(
    days: Sequence[tuple[str, int, int]], *, width: int = 640, height: int = 200
) -> LineChart:
    """Lay out a running total (line) and daily additions (columns) over consecutive days."""
    pad_left, pad_bottom, pad_top = 50, 20, 10
    plot_w, plot_h = width - pad_left - 10, height - pad_bottom - pad_top
    totals = [total for _day, _new, total in days]
    low, high = (min(totals), max(totals)) if totals else (0, 1)
    if high == low:
        high = low + 1
    most_new = max((new for _day, new, _total in days), default=0) or 1
    step = plot_w / max(1, len(days) - 1)
    points = []
    columns = []
    for index, (day, new, total) in enumerate(days):
        x = pad_left + index * step
        y = pad_top + plot_h * (1 - (total - low) / (high - low))
        points.append(f"{x:.1f},{y:.1f}")
        column_h = (plot_h / 3) * new / most_new
        columns.append(
            Bar(
                x=x - max(1.0, step / 2) / 2,
                y=pad_top + plot_h - column_h,
                width=max(1.0, step / 2),
                height=column_h,
                label=day,
                value=new,
            )
        )
    return LineChart(
        width=width,
        height=height,
        points=" ".join(points),
        columns=columns,
        top_label=f"{high:,}",
        first_label=days[0][0] if days else "",
        last_label=days[-1][0] if days else "",
    )
