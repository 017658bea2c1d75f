"""Small bar charts drawn on the server as SVG: no script, readable as a table by screen readers.

The numbers here are the geometry; the template (``_bar_chart.html``) writes the SVG, with a
``<title>`` per bar, and the same figures as a visually hidden table.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 560
HEIGHT = 160
LABELS = 20  # below the bars, for the day names
TOP = 14  # above the tallest bar, for its figure


@dataclass(frozen=True)
class Bar:
    label: str
    value: int


@dataclass(frozen=True)
class DrawnBar:
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float
    show_label: bool  # every bar when there is room; every other one when they are narrow


@dataclass(frozen=True)
class BarChart:
    bars: list[DrawnBar]
    width: int
    height: int
    baseline: float
    total: int
    highest: int


def bar_chart(bars: list[Bar], width: int = WIDTH, height: int = HEIGHT) -> BarChart:
    """``bars`` laid out in a ``width`` by ``height`` box, the tallest reaching near the top."""
    highest = max((b.value for b in bars), default=0)
    slot = width / max(len(bars), 1)
    room = height - LABELS - TOP
    step = 1 if slot >= 40 else 2
    drawn = []
    for n, bar in enumerate(bars):
        tall = room * bar.value / highest if highest else 0.0
        drawn.append(
            DrawnBar(
                label=bar.label,
                value=bar.value,
                x=round(n * slot + slot * 0.15, 1),
                y=round(TOP + room - tall, 1),
                width=round(slot * 0.7, 1),
                height=round(tall, 1),
                show_label=(len(bars) - 1 - n) % step == 0,
            )
        )
    return BarChart(drawn, width, height, TOP + room, sum(b.value for b in bars), highest)
