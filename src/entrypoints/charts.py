"""Bar charts as inline SVG, drawn on the server: no script and no library.

:func:`bars` lays out the geometry; the ``chart.html`` template draws it (autoescaped).
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen

WIDTH, HEIGHT = 640, 200
LEFT, BOTTOM, TOP = 36, 24, 8


@frozen
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    series: int  # which series (its colour class)


@frozen
class Chart:
    title: str
    bars: tuple[Bar, ...]
    labels: tuple[tuple[float, str], ...]  # x, text under the axis
    ticks: tuple[tuple[float, int], ...]  # y, value on the axis
    legend: tuple[str, ...]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    base: int = HEIGHT - BOTTOM


def bars(
    title: str, labels: Sequence[str], series: Sequence[Sequence[int]], legend: Sequence[str] = ()
) -> Chart:
    """Grouped bars: one group per label, one bar per series in it."""
    top = max((max(s, default=0) for s in series), default=0)
    scale = max(top, 1)
    plot = HEIGHT - BOTTOM - TOP
    group = (WIDTH - LEFT) / max(len(labels), 1)
    width = group * 0.8 / max(len(series), 1)
    drawn = []
    for s, values in enumerate(series):
        for i, value in enumerate(values):
            height = plot * max(value, 0) / scale
            x = LEFT + i * group + group * 0.1 + s * width
            drawn.append(
                Bar(
                    round(x, 1),
                    round(HEIGHT - BOTTOM - height, 1),
                    round(width, 1),
                    round(height, 1),
                    value,
                    s,
                )
            )
    every = max(1, len(labels) // 7)  # at most about seven dates under the axis
    shown = tuple(
        (round(LEFT + i * group + group / 2, 1), text)
        for i, text in enumerate(labels)
        if i % every == 0 or i == len(labels) - 1
    )
    ticks = tuple(
        (round(HEIGHT - BOTTOM - plot * v / scale, 1), v) for v in sorted({0, top // 2, top})
    )
    return Chart(title, tuple(drawn), shown, ticks, tuple(legend))
