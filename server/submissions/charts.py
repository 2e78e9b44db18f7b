"""Charts as server-rendered SVG: per-class accuracy, confusion heatmap, history, distribution.

Why SVG from the server rather than Chart.js: Chart.js core has no heatmap (the 15×15
confusion matrix would need a second plugin to vendor and keep up to date); SVG needs
no JavaScript, renders the same in every browser and in a saved page, carries its own
tooltips (``<title>``), and is testable here (the tests count the cells). The trade-off
accepted: no zoom or animated tooltips, which 15 classes and one course do not need.

Readable at any width: every text is at least ``MIN_FONT`` user units, and a chart is
never drawn narrower than ``MIN_SCALE`` of its own width (``min-width``; on a phone the
card scrolls it sideways instead of shrinking it), so no text renders under 11 px. Wider
pages draw it larger. Numbers a pointer would need a tooltip for are printed too (the
confusion matrix's counts), since a touch screen has no hover.

Each function takes plain numbers and already-translated labels and returns safe markup.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import NamedTuple

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from scorer.metrics import CLASS_NAMES

OK, BAD, ACCENT, GRID, MUTED = "#12805c", "#c0362c", "#2f5bea", "#e4e7ec", "#667085"
# 13 user units at 0.85 scale is 11 px: the smallest text a chart ever shows.
MIN_FONT = 13
MIN_SCALE = 0.85
# Self-reported scores are hatched (bars) or hollow (points): visible without colour too.
HATCH_ID = "self-reported-hatch"
HATCH = (
    f'<defs><pattern id="{HATCH_ID}" width="6" height="6" patternUnits="userSpaceOnUse" '
    'patternTransform="rotate(45)"><rect width="3" height="6" fill="#fff" fill-opacity="0.65"/>'
    "</pattern></defs>"
)


class HistoryMark(NamedTuple):
    when: dt.datetime
    accuracy: float
    current: bool
    # A self-reported score is drawn hollow, with ``note`` in its tooltip.
    self_reported: bool = False
    # Whether the score counts toward the pass mark (``Submission.counts_toward_pass``).
    counts: bool = True


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _tick(value: float) -> str:
    """An axis value with two decimals, three where the third is not zero (0.975)."""
    text = f"{value:.3f}"
    return text[:-1] if text.endswith("0") else text


def text_width(text: str, size: float) -> float:
    """A generous estimate of a label's width: CJK glyphs are square, others ~0.62 em."""
    return sum(size if ord(ch) > 0x2E80 else size * 0.62 for ch in text)


def _svg(width: int, height: int, label: str, body: list[str], testid: str) -> SafeString:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'style="min-width: {round(width * MIN_SCALE)}px" '
        f'class="chart" role="img" aria-label="{escape(label)}" data-testid="{testid}">'
        f"<title>{escape(label)}</title>"
    )
    # The wrapper scrolls a chart wider than a phone's card instead of widening the page.
    return mark_safe(  # noqa: S308 (every text is escaped)
        '<div class="chart-scroll">' + head + "".join(body) + "</svg></div>"
    )


def _text(
    x: float,
    y: float,
    text: str,
    *,
    anchor: str = "middle",
    size: int = MIN_FONT,
    color: str = MUTED,
    extra: str = "",
) -> str:
    size = max(size, MIN_FONT)
    return (
        f'<text x="{_num(x)}" y="{_num(y)}" text-anchor="{anchor}" font-size="{size}" '
        f'fill="{color}"{extra}>{escape(text)}</text>'
    )


def _y_axis(
    left: float,
    top: float,
    width: float,
    height: float,
    lo: float,
    hi: float,
    ticks: Sequence[float],
) -> list[str]:
    parts = []
    for tick in ticks:
        y = top + height - (tick - lo) / (hi - lo) * height
        parts.append(
            f'<line x1="{_num(left)}" x2="{_num(left + width)}" y1="{_num(y)}" '
            f'y2="{_num(y)}" stroke="{GRID}"/>'
        )
        parts.append(_text(left - 6, y + 4, _tick(tick), anchor="end"))
    return parts


def _threshold(
    left: float,
    top: float,
    width: float,
    height: float,
    lo: float,
    hi: float,
    threshold: float,
    label: str,
) -> list[str]:
    if not lo <= threshold <= hi:
        return []
    y = top + height - (threshold - lo) / (hi - lo) * height
    return [
        f'<line x1="{_num(left)}" x2="{_num(left + width)}" y1="{_num(y)}" y2="{_num(y)}" '
        f'stroke="{BAD}" stroke-dasharray="5 4" data-role="threshold"/>',
        # In the right margin: inside the plot it would cover the bars' own value labels.
        _text(
            left + width + 4, y + 4, _threshold_text(label, threshold), anchor="start", color=BAD
        ),
    ]


def _threshold_text(label: str, threshold: float) -> str:
    return f"{label} {threshold:g}"


def _threshold_margin(label: str, threshold: float) -> int:
    """Room right of the plot for the whole threshold label, in this language."""
    return math.ceil(text_width(_threshold_text(label, threshold), MIN_FONT)) + 10


def per_class_bars(
    values: Sequence[float], threshold: float, *, label: str, threshold_label: str
) -> SafeString:
    """One bar per katakana class, green at or above the pass threshold, red below."""
    width, height, left, top, bottom = 640, 250, 50, 20, 32
    plot_w = width - left - _threshold_margin(threshold_label, threshold)
    plot_h = height - top - bottom
    slot = plot_w / max(1, len(values))
    parts = _y_axis(left, top, plot_w, plot_h, 0.0, 1.0, (0.0, 0.25, 0.5, 0.75, 1.0))
    for index, value in enumerate(values):
        name = CLASS_NAMES[index] if index < len(CLASS_NAMES) else str(index)
        bar_h = max(0.0, min(1.0, value)) * plot_h
        x = left + index * slot + slot * 0.15
        color = OK if value >= threshold else BAD
        parts.append(
            f'<rect x="{_num(x)}" y="{_num(top + plot_h - bar_h)}" width="{_num(slot * 0.7)}" '
            f'height="{_num(bar_h)}" fill="{color}" data-class="{index}">'
            f"<title>{escape(name)}: {value:.4f}</title></rect>"
        )
        parts.append(_text(x + slot * 0.35, top + plot_h + 20, name, size=16, color="#1d2330"))
        parts.append(_text(x + slot * 0.35, top + plot_h - bar_h - 4, f"{value:.2f}"))
    parts += _threshold(left, top, plot_w, plot_h, 0.0, 1.0, threshold, threshold_label)
    return _svg(width, height, label, parts, "per-class-chart")


def _heat_color(fraction: float, diagonal: bool) -> str:
    # Row-normalised: 1,300 and 800 images per class compare on the same scale.
    # Green on the diagonal (correct), red off it (confusions): a confusion stands out.
    fraction = max(0.0, min(1.0, fraction))
    if diagonal:
        return f"rgba(18,128,92,{0.08 + 0.92 * fraction:.3f})"
    return f"rgba(192,54,44,{min(1.0, 0.1 + 3.0 * fraction):.3f})" if fraction > 0 else "#ffffff"


def confusion_heatmap(
    confusion: Sequence[Sequence[int]], *, label: str, true_label: str, predicted_label: str
) -> SafeString:
    """A 15×15 heatmap, rows = true class, columns = predicted class, labelled in katakana."""
    n = len(confusion)
    # Cells wide enough for a four-digit count at the minimum font size.
    cell, left, top = 36, 60, 52
    width, height = left + n * cell + 10, top + n * cell + 10
    parts = [
        _text(left + n * cell / 2, 16, predicted_label, color="#1d2330"),
        _text(
            16,
            top + n * cell / 2,
            true_label,
            color="#1d2330",
            extra=f' transform="rotate(-90 16 {_num(top + n * cell / 2)})"',
        ),
    ]
    for j in range(n):
        parts.append(
            _text(left + j * cell + cell / 2, top - 8, CLASS_NAMES[j], size=16, color="#1d2330")
        )
    for i, row in enumerate(confusion):
        total = sum(row) or 1
        y = top + i * cell
        parts.append(
            _text(
                left - 10, y + cell / 2 + 6, CLASS_NAMES[i], anchor="end", size=16, color="#1d2330"
            )
        )
        for j, count in enumerate(row):
            fraction = count / total
            x = left + j * cell
            tip = f"{CLASS_NAMES[i]} → {CLASS_NAMES[j]}: {count} ({fraction:.1%})"
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" stroke="#fff" '
                f'fill="{_heat_color(fraction, i == j)}" data-count="{count}">'
                f"<title>{escape(tip)}</title></rect>"
            )
            if count:
                ink = (
                    "#fff"
                    if (i == j and fraction > 0.5) or (i != j and fraction > 0.2)
                    else "#1d2330"
                )
                parts.append(_text(x + cell / 2, y + cell / 2 + 5, str(count), color=ink))
    return _svg(width, height, label, parts, "confusion-heatmap")


def history_line(
    points: Sequence[HistoryMark],
    threshold: float,
    *,
    label: str,
    threshold_label: str,
    self_reported_label: str = "",
    date_format: str = "%m/%d",
    time_format: str = "%H:%M",
) -> SafeString:
    """Accuracy of each scored submission, oldest first; the current one is ringed.

    Green only for a score that counts and reaches the threshold; a self-reported score is
    hollow and says so in its tooltip. Each labelled point shows its date and, under it,
    its time: several submissions a day are normal.
    """
    width, height, left, top, bottom = 640, 240, 50, 20, 44
    plot_w = width - left - _threshold_margin(threshold_label, threshold)
    plot_h = height - top - bottom
    values = [point.accuracy for point in points]
    lo = min([*values, threshold]) if values else 0.0
    lo = max(0.0, math.floor((lo - 0.02) * 20) / 20)
    hi = 1.0
    ticks = [t for t in (lo, (lo + hi) / 2, hi)]
    parts = _y_axis(left, top, plot_w, plot_h, lo, hi, ticks)
    parts += _threshold(left, top, plot_w, plot_h, lo, hi, threshold, threshold_label)
    step = plot_w / max(1, len(points) - 1) if len(points) > 1 else 0.0
    coords = []
    for index, point in enumerate(points):
        x = left + (index * step if len(points) > 1 else plot_w / 2)
        y = top + plot_h - (point.accuracy - lo) / (hi - lo) * plot_h
        coords.append((x, y, point))
    if len(coords) > 1:
        path = " ".join(f"{_num(x)},{_num(y)}" for x, y, _point in coords)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{ACCENT}" stroke-width="2"/>')
    every = max(1, math.ceil(len(coords) / 8))
    for index, (x, y, point) in enumerate(coords):
        color = OK if point.counts and point.accuracy >= threshold else BAD
        radius = 6 if point.current else 4
        ring = f' stroke="{ACCENT}" stroke-width="3"' if point.current else ""
        fill = color
        note = ""
        if point.self_reported:
            fill, note = "#fff", f" ({self_reported_label})"
            ring = ring or f' stroke="{color}" stroke-width="2"'
        parts.append(
            f'<circle cx="{_num(x)}" cy="{_num(y)}" r="{radius}" fill="{fill}"{ring} '
            f'data-point="{index}" data-self-reported="{int(point.self_reported)}">'
            f"<title>{escape(point.when.strftime('%Y-%m-%d %H:%M'))}: "
            f"{point.accuracy:.4f}{escape(note)}</title></circle>"
        )
        if index % every == 0 or point.current:
            parts.append(_text(x, top + plot_h + 18, point.when.strftime(date_format)))
            parts.append(_text(x, top + plot_h + 34, point.when.strftime(time_format)))
    return _svg(width, height, label, parts, "history-chart")


def distribution_bars(
    values: Sequence[float],
    threshold: float,
    *,
    label: str,
    threshold_label: str,
    count_label: str,
    self_reported: Sequence[bool] = (),
    self_reported_label: str = "",
) -> SafeString:
    """Histogram of learners' best scores in bins of 0.02 (0.05 when scores are spread out).

    ``self_reported[i]`` marks ``values[i]`` as self-reported: that part of each bar is
    hatched, counted in its tooltip and explained in a legend.
    """
    flags = list(self_reported) or [False] * len(values)
    # A legend row under the axis labels when anything is self-reported.
    legend = any(flags)
    width, height, left, top, bottom = 640, 230 + 20 * legend, 50, 24, 36 + 20 * legend
    plot_w, plot_h = width - left - 10, height - top - bottom
    lo_value = min([*values, threshold]) if values else threshold
    bin_w = 0.02 if lo_value >= 0.5 else 0.05
    lo = max(0.0, math.floor(lo_value / bin_w) * bin_w)
    n_bins = max(1, round((1.0 - lo) / bin_w))
    counts = [0] * n_bins
    reported = [0] * n_bins
    for value, flag in zip(values, flags, strict=True):
        slot_index = min(n_bins - 1, max(0, int((value - lo) / bin_w)))
        counts[slot_index] += 1
        reported[slot_index] += flag
    top_count = max([*counts, 1])
    parts = [_text(left - 6, top + 8, count_label, anchor="end")]
    if legend:
        parts.insert(0, HATCH)
        legend_y = height - 16
        for fill in (MUTED, f"url(#{HATCH_ID})"):
            parts.append(
                f'<rect x="{left}" y="{legend_y}" width="12" height="10" fill="{fill}" '
                'data-role="legend"/>'
            )
        parts.append(_text(left + 16, legend_y + 9, self_reported_label, anchor="start"))
    slot = plot_w / n_bins
    for index, count in enumerate(counts):
        start = lo + index * bin_w
        bar_h = count / top_count * plot_h
        x = left + index * slot
        color = OK if start + 1e-9 >= threshold else BAD
        title = f"{start:.2f}–{start + bin_w:.2f}: {count}"
        if reported[index]:
            title += f" ({self_reported_label}: {reported[index]})"
        parts.append(
            f'<rect x="{_num(x + 1)}" y="{_num(top + plot_h - bar_h)}" width="{_num(slot - 2)}" '
            f'height="{_num(bar_h)}" fill="{color}" data-bin="{index}" data-count="{count}" '
            f'data-self-reported="{reported[index]}"><title>{escape(title)}</title></rect>'
        )
        if reported[index]:
            # The self-reported share sits on top of the bar, hatched over its colour.
            part_h = reported[index] / top_count * plot_h
            parts.append(
                f'<rect x="{_num(x + 1)}" y="{_num(top + plot_h - bar_h)}" '
                f'width="{_num(slot - 2)}" height="{_num(part_h)}" fill="url(#{HATCH_ID})" '
                'data-role="self-reported" pointer-events="none"/>'
            )
        if count:
            parts.append(_text(x + slot / 2, top + plot_h - bar_h - 4, str(count)))
    label_every = max(1, math.ceil(n_bins / 8))
    for index in range(0, n_bins + 1, label_every):
        parts.append(_text(left + index * slot, top + plot_h + 18, _tick(lo + index * bin_w)))
    if lo <= threshold <= 1.0:
        x = left + (threshold - lo) / (1.0 - lo) * plot_w if lo < 1.0 else left
        parts.append(
            f'<line x1="{_num(x)}" x2="{_num(x)}" y1="{top}" y2="{top + plot_h}" '
            f'stroke="{BAD}" stroke-dasharray="5 4" data-role="threshold"/>'
        )
        # Left of the line where it fits, else right of it: never cut off at the edge.
        text = _threshold_text(threshold_label, threshold)
        fits_left = x - 4 - text_width(text, MIN_FONT) >= 0
        parts.append(
            _text(
                x - 4 if fits_left else x + 4,
                top - 6,
                text,
                anchor="end" if fits_left else "start",
                color=BAD,
                extra=' data-role="threshold-label"',
            )
        )
    return _svg(width, height, label, parts, "distribution-chart")


def share_line(
    points: Sequence[tuple[dt.date, float]], *, label: str, date_format: str = "%m/%d"
) -> SafeString:
    """A share (0 to 1) per day as a rising step line, with a label on its last value."""
    width, height, left, top, bottom, right = 640, 230, 50, 20, 32, 60
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = _y_axis(left, top, plot_w, plot_h, 0.0, 1.0, (0.0, 0.5, 1.0))
    step = plot_w / max(1, len(points) - 1)
    coords = [
        (left + (i * step if len(points) > 1 else plot_w / 2), top + plot_h - share * plot_h)
        for i, (_day, share) in enumerate(points)
    ]
    if coords:
        path = [f"{_num(coords[0][0])},{_num(coords[0][1])}"]
        for (_x0, y0), (x1, y1) in zip(coords, coords[1:], strict=False):
            path += [f"{_num(x1)},{_num(y0)}", f"{_num(x1)},{_num(y1)}"]
        parts.append(
            f'<polyline points="{" ".join(path)}" fill="none" stroke="{OK}" stroke-width="2.5"/>'
        )
        x, y = coords[-1]
        parts.append(_text(x + 6, y + 4, f"{points[-1][1]:.0%}", anchor="start", color=OK))
    every = max(1, math.ceil(len(points) / 8))
    for i, (day, share) in enumerate(points):
        x, y = coords[i]
        parts.append(
            f'<circle cx="{_num(x)}" cy="{_num(y)}" r="3" fill="{OK}" data-day="{day.isoformat()}">'
            f"<title>{escape(day.isoformat())}: {share:.0%}</title></circle>"
        )
        if i % every == 0 or i == len(points) - 1:
            parts.append(_text(x, top + plot_h + 18, day.strftime(date_format)))
    return _svg(width, height, label, parts, "pass-share-chart")
