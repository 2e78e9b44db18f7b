"""A learner's own history, to take away: a CSV for a spreadsheet and a PNG for a slide.

The course asks learners to present how their accuracy developed in the mid-term and
final talks. Both files are in the learner's language and the course's time zone, list
every scored submission, and mark the ones that do not count toward the 基準値
(self-reported or untrusted). The chart is drawn by matplotlib (object API, Agg: no
global state, safe in a threaded web worker) at slide size with the course threshold;
it is imported only when a chart is drawn.
"""

from __future__ import annotations

import functools
import io
from typing import Any

from django.http import HttpResponse
from django.utils.translation import gettext as _

from server.courses.models import Course
from server.exports import excel_csv_response
from server.submissions.selectors import HistoryPoint, accuracy_history

# Japanese labels need a CJK font; the first one installed is used (Debian: fonts-noto-cjk).
CJK_FONTS = ("Noto Sans CJK JP", "IPAexGothic", "IPAGothic", "TakaoGothic", "VL Gothic")
SLIDE_INCHES = (12.8, 7.2)  # 16:9, 1280 x 720 px at 100 dpi
DPI = 100


def history_csv(learner_id: int, course: Course) -> HttpResponse:
    zone = course.tz
    header = [_("submission"), _("submitted at"), _("accuracy"), _("counts toward the threshold"),
              _("self-reported")]  # fmt: skip
    rows = [
        [
            point.pk,
            point.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            f"{point.accuracy:.4f}",
            _("yes") if point.counts else _("no"),
            _("yes") if point.self_reported else _("no"),
        ]
        for point in accuracy_history(learner_id, course)
    ]
    return excel_csv_response(header, rows, f"{course.code}-my-history.csv")


def history_png(learner_id: int, course: Course) -> HttpResponse:
    body = history_chart_png(accuracy_history(learner_id, course), course)
    response = HttpResponse(body, content_type="image/png")
    response["Content-Disposition"] = f'attachment; filename="{course.code}-my-history.png"'
    return response


@functools.cache
def chart_font() -> list[str]:
    """The first installed CJK font, then matplotlib's default (named once: a list of
    missing families makes matplotlib warn on every label)."""
    from matplotlib import font_manager  # see history_chart_png

    installed = {entry.name for entry in font_manager.fontManager.ttflist}
    return [name for name in CJK_FONTS if name in installed][:1] + ["DejaVu Sans"]


def history_chart_png(history: list[HistoryPoint], course: Course) -> bytes:
    """Accuracy over time with the threshold line, fit for a 16:9 slide."""
    # Imported here, not at the top: matplotlib costs every web process ~25 MB of RSS
    # (measured by bench.web's upload test), and only this download needs it.
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    FONTS = chart_font()  # noqa: N806 - read like the constant it is
    zone = course.tz
    figure = Figure(figsize=SLIDE_INCHES, dpi=DPI)
    axes = figure.add_subplot()
    font = {"family": FONTS}
    counted = [p for p in history if p.counts]
    others = [p for p in history if not p.counts]

    def when(points: list[HistoryPoint]) -> Any:
        # Naive local times: matplotlib's date axis then shows the course's clock.
        return [p.created_at.astimezone(zone).replace(tzinfo=None) for p in points]

    if history:
        axes.plot(when(history), [p.accuracy for p in history], color="#98a2b3", zorder=1)
    axes.scatter(
        when(counted),
        [p.accuracy for p in counted],
        s=70,
        color="#2f5bea",
        label=_("counts toward the threshold"),
        zorder=3,
    )
    if others:
        axes.scatter(
            when(others),
            [p.accuracy for p in others],
            s=70,
            facecolors="none",
            edgecolors="#9a6700",
            linewidths=2,
            label=_("self-reported or untrusted (does not count)"),
            zorder=3,
        )
    threshold = course.pass_threshold
    axes.axhline(threshold, color="#c0362c", linestyle="--", linewidth=2, zorder=2)
    axes.annotate(
        _("threshold (基準値) %(t)s") % {"t": f"{threshold:.1%}"},
        xy=(0, threshold),
        xycoords=("axes fraction", "data"),
        xytext=(8, 6),
        textcoords="offset points",
        ha="left",
        color="#c0362c",
        fontsize=16,
        fontfamily=FONTS,
    )
    low = min([threshold, *(p.accuracy for p in history)])
    axes.set_ylim(max(0.0, low - 0.05), 1.0)
    axes.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    axes.set_title(
        _("%(course)s: my accuracy on the hidden test set") % {"course": course.name},
        fontdict={**font, "size": 22},
    )
    axes.set_xlabel(_("submitted at"), fontdict={**font, "size": 16})
    axes.set_ylabel(_("accuracy"), fontdict={**font, "size": 16})
    axes.tick_params(labelsize=14)
    axes.grid(True, color="#e4e7ec")
    if not history:
        axes.text(0.5, 0.5, _("No scored submission yet."), transform=axes.transAxes,
                  ha="center", fontsize=20, fontfamily=FONTS)  # fmt: skip
    else:
        axes.legend(prop={"family": FONTS, "size": 14}, loc="lower right")
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
