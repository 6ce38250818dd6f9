"""Server-side geometry of the dashboard's stacked bar chart (rendered as inline SVG by the template).

Pure: numbers in, rectangles and tick positions out; no JavaScript, no chart library, no CDN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 14, 30


def nice_step(raw: float) -> int:
    """The smallest of 1, 2, 5 × 10^k (an integer, at least 1) that is >= raw."""
    if raw <= 1:
        return 1
    exponent = math.floor(math.log10(raw))
    base = 10**exponent
    for multiple in (1, 2, 5, 10):
        if raw <= multiple * base:
            return int(multiple * base)
    return int(10 * base)  # pragma: no cover - the loop always returns


@dataclass
class Segment:
    kind: str
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float


@dataclass
class Column:
    day: date
    label: str
    total: int
    x_center: float
    segments: list[Segment] = field(default_factory=list)


@dataclass
class Tick:
    value: int
    y: float


@dataclass
class Chart:
    width: int
    height: int
    left: int
    right_edge: int
    baseline: float
    columns: list[Column]
    ticks: list[Tick]
    max_total: int


def stacked_bars(*, days: list[date], series: dict[str, list[int]], kinds: list[tuple[str, str]],
                 ticks: int = 4) -> Chart:
    """Stack each day's counts in `kinds` order (bottom first) on an axis rounded up to a nice number."""
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_height
    totals = [sum(series[kind][i] for kind, _ in kinds) for i in range(len(days))]
    max_total = max(totals, default=0)
    step = nice_step(max_total / ticks) if max_total else 1
    top_value = max(step, math.ceil(max_total / step) * step)
    scale = plot_height / top_value
    slot = plot_width / max(1, len(days))
    bar_width = round(slot * 0.62, 2)

    columns = []
    for i, day in enumerate(days):
        x_center = round(LEFT + slot * (i + 0.5), 2)
        column = Column(day=day, label=f"{day:%b} {day.day}", total=totals[i], x_center=x_center)
        y = float(baseline)
        for kind, label in kinds:
            value = series[kind][i]
            if value <= 0:
                continue
            height = value * scale
            y -= height
            column.segments.append(Segment(kind, label, value, round(x_center - bar_width / 2, 2), round(y, 2),
                                           bar_width, round(height, 2)))
        columns.append(column)
    tick_rows = [Tick(value, round(baseline - value * scale, 2)) for value in range(0, top_value + 1, step)]
    return Chart(WIDTH, HEIGHT, LEFT, WIDTH - RIGHT, float(baseline), columns, tick_rows, max_total)
