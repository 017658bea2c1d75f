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
    label: str  # in full, for the bar's title and the table: "24 Nov"
    value: int
    tick: str = ""  # under the bar, short enough for a phone: "24"


@dataclass(frozen=True)
class DrawnBar:
    label: str
    tick: str
    value: int
    x: float
    y: float
    width: float
    height: float
    show_tick: bool  # every bar's when there is room; every other one's when they are narrow


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
    step = 1 if slot >= 28 else 2
    drawn = []
    for n, bar in enumerate(bars):
        tall = room * bar.value / highest if highest else 0.0
        drawn.append(
            DrawnBar(
                label=bar.label,
                tick=bar.tick or bar.label,
                value=bar.value,
                x=round(n * slot + slot * 0.15, 1),
                y=round(TOP + room - tall, 1),
                width=round(slot * 0.7, 1),
                height=round(tall, 1),
                show_tick=(len(bars) - 1 - n) % step == 0,
            )
        )
    return BarChart(drawn, width, height, TOP + room, sum(b.value for b in bars), highest)
