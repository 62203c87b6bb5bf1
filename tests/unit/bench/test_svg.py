"""The hand-written SVG charts: axes cover every value, and the files are well-formed SVG."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from bench.svg import _ticks, bar_chart, line_chart


def test_ticks_reach_the_highest_value() -> None:
    for low, high in ((0, 650), (0, 13), (0, 1), (-0.3, 3.7), (0, 0.004)):
        ticks = _ticks(low, high)
        assert ticks[0] <= low and ticks[-1] >= high, (low, high, ticks)


def test_charts_are_svg_with_one_line_per_series(tmp_path: Path) -> None:
    line = line_chart(tmp_path / "l.svg", "t", {"a": [(0, 0), (1, 700)], "b": [(0, 1)]}, x_label="x", y_label="y")
    root = ET.parse(line).getroot()
    assert root.tag.endswith("svg")
    assert len(root.findall("{http://www.w3.org/2000/svg}polyline")) == 2
    bars = bar_chart(tmp_path / "b.svg", "t", {"g1": {"s1": 1.0, "s2": 2.0}}, y_label="y")
    assert ET.parse(bars).getroot().tag.endswith("svg")
