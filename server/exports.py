"""Spreadsheet downloads that open correctly in Excel, the tool instructors and learners use.

UTF-8 with a byte-order mark (Excel otherwise reads Japanese names as mojibake), CRLF line
ends, and cells that Excel would run as a formula written as text (CSV injection).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from django.http import HttpResponse

# Excel runs a cell that starts with one of these as a formula.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def excel_safe(value: str) -> str:
    """Text a person typed (a name, a file name), never run as a formula."""
    return "'" + value if value.startswith(_FORMULA_PREFIXES) else value


def excel_csv_response(
    header: Sequence[object], rows: Iterable[Sequence[object]], filename: str
) -> HttpResponse:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    body = ("\ufeff" + buffer.getvalue()).encode("utf-8")
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
