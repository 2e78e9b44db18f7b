"""The hand-drawn SVG charts are readable: a minimum text size, never shrunk below it,
date and time on history points, three-decimal ticks, whole threshold labels."""

from __future__ import annotations

import datetime as dt
import re

from server.submissions import charts
from server.submissions.charts import MIN_FONT, MIN_SCALE, HistoryMark, text_width

TEXT = re.compile(
    r'<text x="([\d.-]+)" y="[\d.-]+" text-anchor="(\w+)" font-size="(\d+)"[^>]*>([^<]*)</text>'
)


def _texts(svg: str) -> list[tuple[float, str, int, str]]:
    return [(float(x), a, int(size), text) for x, a, size, text in TEXT.findall(svg)]


def _width(svg: str) -> int:
    return int(re.search(r'viewBox="0 0 (\d+) \d+"', svg).group(1))  # type: ignore[union-attr]


def _all_charts() -> list[str]:
    at = dt.datetime(2026, 12, 3, 10, 15)
    return [
        charts.per_class_bars([0.99] * 15, 0.975, label="a", threshold_label="基準値"),
        charts.confusion_heatmap(
            [[1300 if i == j else 3 for j in range(15)] for i in range(15)],
            label="c",
            true_label="正解",
            predicted_label="予測",
        ),
        charts.history_line(
            [HistoryMark(at, 0.96, False), HistoryMark(at, 0.99, True)],
            0.98,
            label="h",
            threshold_label="pass threshold",
        ),
        charts.distribution_bars(
            [0.5, 0.9], 0.98, label="d", threshold_label="基準値", count_label="n"
        ),
        charts.share_line([(at.date(), 0.5)], label="s"),
    ]


def test_no_chart_text_is_smaller_than_11_px_at_its_narrowest():
    for svg in _all_charts():
        sizes = [size for _x, _a, size, _t in _texts(svg)]
        assert sizes and min(sizes) >= MIN_FONT
        assert f"min-width: {round(_width(svg) * MIN_SCALE)}px" in svg
        assert min(sizes) * MIN_SCALE >= 11
        assert svg.startswith('<div class="chart-scroll">')


def test_history_points_show_their_date_and_their_time():
    day = dt.datetime(2026, 12, 3, 10, 15)
    svg = charts.history_line(
        [HistoryMark(day, 0.97, False), HistoryMark(day.replace(hour=14, minute=40), 0.985, True)],
        0.98,
        label="h",
        threshold_label="threshold",
    )
    labels = [t for _x, _a, _s, t in _texts(svg)]
    assert labels.count("12/03") == 2
    assert "10:15" in labels and "14:40" in labels


def test_a_tick_at_0_975_reads_0_975_and_others_keep_two_decimals():
    svg = charts.history_line(
        [HistoryMark(dt.datetime(2026, 12, 3, 9, 0), 0.97, True)],
        0.98,
        label="h",
        threshold_label="threshold",
    )
    labels = [t for _x, _a, _s, t in _texts(svg)]
    assert "0.975" in labels and "0.95" in labels and "1.00" in labels
    assert "0.97" not in labels


def test_threshold_labels_fit_inside_the_chart_in_both_languages():
    for label in ("基準値", "pass threshold"):
        for svg in (
            charts.per_class_bars([0.9] * 15, 0.975, label="a", threshold_label=label),
            charts.history_line(
                [HistoryMark(dt.datetime(2026, 12, 3), 0.99, True)],
                0.975,
                label="h",
                threshold_label=label,
            ),
            # The threshold at the left edge: the label must not run off it.
            charts.distribution_bars(
                [0.99], 0.5, label="d", threshold_label=label, count_label="n"
            ),
            charts.distribution_bars(
                [0.6], 0.98, label="d", threshold_label=label, count_label="n"
            ),
        ):
            (x, anchor, size, text) = next(t for t in _texts(svg) if t[3].startswith(label))
            start = x - text_width(text, size) if anchor == "end" else x
            end = x if anchor == "end" else x + text_width(text, size)
            assert start >= 0 and end <= _width(svg), (label, text, start, end)


def test_the_confusion_matrix_prints_every_count_for_touch_screens():
    svg = charts.confusion_heatmap(
        [[1300 if i == j else (7 if j == 0 else 0) for j in range(15)] for i in range(15)],
        label="c",
        true_label="t",
        predicted_label="p",
    )
    labels = [t for _x, _a, _s, t in _texts(svg)]
    assert labels.count("1300") == 15 and labels.count("7") == 14
