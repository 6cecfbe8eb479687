"""Server-side SVG charts drawn by pygal (pure: series in, SVG markup out).

No JavaScript: pygal's tooltip script would be loaded from a CDN, so `js` is
emptied, and the inline config script pygal still writes is dropped (the
pages' Content-Security-Policy refuses inline scripts). The numbers are also
in a table under each chart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pygal
from markupsafe import Markup
from pygal.style import Style

_STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#1f2933",
    foreground_strong="#1f2933",
    foreground_subtle="#9aa5b1",
    colors=("#2f6fde", "#e4572e", "#17a589", "#8e44ad", "#f39c12"),
    font_family="system-ui, -apple-system, 'Segoe UI', sans-serif",
    label_font_size=11,
    major_label_font_size=11,
    value_font_size=10,
    title_font_size=14,
)


def _config(**overrides) -> dict:
    return {
        "style": _STYLE,
        "js": [],  # no CDN script at run time
        "disable_xml_declaration": True,  # inline in HTML
        "width": 640,
        "height": 260,
        "show_legend": False,
        "margin": 8,
        "x_label_rotation": 0,
        "show_minor_x_labels": False,
        "truncate_label": 12,
        "no_data_text": "No data yet",
        "min_scale": 2,
        **overrides,
    }


_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL)


def _svg(chart) -> Markup:
    return Markup(_SCRIPT.sub("", chart.render(is_unicode=True)))


def _major_every(n: int, wanted: int = 6) -> int:
    return max(1, -(-n // wanted))


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str, series: str) -> Markup:
    chart = pygal.Bar(**_config(title=title, x_labels_major_every=_major_every(len(labels))))
    chart.x_labels = list(labels)
    chart.add(series, list(values))
    return _svg(chart)


def line_chart(labels: Sequence[str], series: dict[str, Sequence[float | None]], *, title: str) -> Markup:
    chart = pygal.Line(
        **_config(
            title=title,
            x_labels_major_every=_major_every(len(labels)),
            show_legend=len(series) > 1,
            legend_at_bottom=True,
            dots_size=2,
        )
    )
    chart.x_labels = list(labels)
    for name, values in series.items():
        chart.add(name, list(values))
    return _svg(chart)


def horizontal_bar_chart(items: Sequence[tuple[str, float]], *, title: str, series: str) -> Markup:
    chart = pygal.HorizontalBar(
        **_config(title=title, truncate_label=18, height=max(160, 28 * len(items) + 60), print_values=True)
    )
    chart.x_labels = [label for label, _ in items]
    chart.add(series, [value for _, value in items])
    return _svg(chart)


def count_ticks(largest: float, wanted: int = 5) -> list[int]:
    """Whole-number axis labels from 0 to at least `largest` (pygal would label 0.2, 0.4... for counts up to a few)."""
    step = max(1, -(-int(largest) // wanted))
    top = max(step, -(-int(largest) // step) * step)
    return list(range(0, top + 1, step))


def funnel_chart(items: Sequence[tuple[str, int]], *, title: str) -> Markup:
    """One horizontal bar per step, the first step on top, with its number of users printed."""
    largest = max((value for _, value in items), default=0)
    chart = pygal.HorizontalBar(
        **_config(
            title=title,
            truncate_label=18,
            height=max(160, 36 * len(items) + 60),
            print_values=True,
            y_labels=count_ticks(largest),
            show_minor_x_labels=True,
        )  # a horizontal chart's value axis is its x axis
    )
    chart.x_labels = [label for label, _ in reversed(items)]  # pygal draws the first label at the bottom
    chart.add("users", [value for _, value in reversed(items)])
    return _svg(chart)


def volume_band_chart(
    labels: Sequence[str],
    actual: Sequence[float | None],
    lower: Sequence[float | None],
    upper: Sequence[float | None],
    anomalies: Sequence[float | None],
    *,
    title: str,
) -> Markup:
    """Hourly counts inside their expected band (dashed edges), the anomalies as large dots on the counts."""
    chart = pygal.Line(
        **_config(
            title=title,
            x_labels_major_every=_major_every(len(labels)),
            show_legend=True,
            legend_at_bottom=True,
            dots_size=1,
            show_minor_x_labels=False,
        )
    )
    chart.x_labels = list(labels)
    chart.add("events", list(actual))
    chart.add("anomaly", list(anomalies), stroke=False, dots_size=5)
    chart.add("band low", list(lower), stroke_style={"dasharray": "4, 4"}, show_dots=False)
    chart.add("band high", list(upper), stroke_style={"dasharray": "4, 4"}, show_dots=False)
    return _svg(chart)
