"""Import learners into a course from a class-list CSV.

The file comes from Excel or an LMS export, so it is read leniently: UTF-8 with or
without BOM, cp932 (Excel's "CSV" on Japanese Windows), UTF-16 with BOM (Excel's
"Unicode text", tab-separated); comma or tab separated; an optional header row. Columns
are name, email, course code, in that order unless a header names them (English or
Japanese headers). A blank course code means "this course".

Each line succeeds or fails on its own and every failure names its line, so an
instructor fixes the few bad lines and imports the file again: lines already imported
come back as "already enrolled", never as duplicates. New users get no usable password
and an invitation email with a set-password link, sent after the import commits; an
existing account added to the course is told by email, never enrolled silently. The
page shows both as "added" (``ImportReport.added``): whether an address already had an
account on this server is not the instructor's to learn (issue 13).
"""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.translation import gettext as _

from server.accounts.emails import enrolment_outbox_create, invitation_outbox_create
from server.accounts.models import User
from server.courses.models import Course, Enrollment, Role
from server.outbox.models import EmailKind, OutboxEmail

MAX_CSV_BYTES = 2 * 1024 * 1024
MAX_ROWS = 5000
NAME_MAX = 150

# Header cells, compared after NFKC, lower-casing and removing spaces/underscores.
HEADER_NAMES: dict[str, set[str]] = {
    "name": {"name", "fullname", "displayname", "氏名", "名前", "なまえ", "受講者名", "学生氏名"},
    "email": {
        "email",
        "e-mail",
        "mail",
        "emailaddress",
        "e-mailaddress",
        "メール",
        "メールアドレス",
        "eメール",
        "eメールアドレス",
    },
    "course": {"course", "coursecode", "code", "コース", "コースコード", "講座", "講座コード"},
}
POSITIONAL = {"name": 0, "email": 1, "course": 2}


class ImportFileError(Exception):
    """The file as a whole cannot be read (encoding, size, no email column)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ImportedLearner:
    line: int
    email: str
    name: str


@dataclass(frozen=True)
class LineError:
    line: int
    message: str


@dataclass
class ImportReport:
    """What an import did, line by line. Messages are in the language active during import."""

    created: list[ImportedLearner] = field(default_factory=list)  # new account, invited
    enrolled: list[ImportedLearner] = field(default_factory=list)  # existing account, now enrolled
    already_enrolled: list[ImportedLearner] = field(default_factory=list)
    reinvited: list[ImportedLearner] = field(default_factory=list)  # no password yet: invited again
    errors: list[LineError] = field(default_factory=list)

    @property
    def invited(self) -> int:
        return len(self.created) + len(self.reinvited)

    @property
    def added(self) -> list[ImportedLearner]:
        """Enrolled by this import, new accounts and existing ones alike, in file order."""
        return sorted(self.created + self.enrolled, key=lambda entry: entry.line)


@dataclass(frozen=True)
class _Row:
    line: int
    name: str
    email: str
    course: str


def decode_csv(data: bytes) -> str:
    """Text of a CSV file in any encoding Excel writes for Japanese users."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    else:
        # UTF-8 first: cp932 text almost never decodes as UTF-8, the converse often would.
        for encoding in ("utf-8-sig", "cp932"):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                continue
    raise ImportFileError(
        _("The file could not be read as text. Save it as CSV (UTF-8 or Shift_JIS) and try again.")
    )


def _normalise_header(cell: str) -> str:
    return "".join(unicodedata.normalize("NFKC", cell).lower().replace("_", " ").split())


def _column_map(first_row: list[str]) -> dict[str, int] | None:
    """Column positions named by a header row, or None when the first row is data."""
    if any("@" in cell for cell in first_row):
        return None
    found: dict[str, int] = {}
    for index, cell in enumerate(first_row):
        key = _normalise_header(cell)
        for column, names in HEADER_NAMES.items():
            if key in names and column not in found:
                found[column] = index
    if not found:
        return dict(POSITIONAL)  # a header we do not recognise: skip it, keep the order
    if "email" not in found:
        raise ImportFileError(_("The header row has no email column."))
    return found


def read_rows(text: str) -> Iterator[_Row]:
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns: dict[str, int] | None = None
    for raw_cells in reader:
        cells = [cell.strip() for cell in raw_cells]
        if not any(cells):
            continue
        if columns is None:
            header = _column_map(cells)
            columns = header or dict(POSITIONAL)
            if header is not None:
                continue
        name, email, course = (_cell(cells, columns.get(c)) for c in ("name", "email", "course"))
        # line_num is the last physical line of the record: right for one-line records.
        yield _Row(line=reader.line_num, name=name, email=email, course=course)


def _cell(cells: list[str], index: int | None) -> str:
    return cells[index] if index is not None and index < len(cells) else ""


def _clean_email(raw: str) -> str:
    # NFKC turns the full-width "＠" and letters typed in Japanese input mode into ASCII.
    email = unicodedata.normalize("NFKC", raw).strip().lower()
    validate_email(email)
    return email


def learners_import(
    *,
    course: Course,
    csv_file: IO[bytes],
    invited_by: User | None,
    resend_invitations: bool = False,
) -> ImportReport:
    """Create and enrol the learners listed in ``csv_file``; invite the new ones by email.

    With ``resend_invitations`` a listed learner who has not yet set a password gets the
    invitation again. Raises ``ImportFileError`` when the file cannot be read at all.
    """
    data = csv_file.read(MAX_CSV_BYTES + 1)
    if len(data) > MAX_CSV_BYTES:
        raise ImportFileError(
            _("The file is larger than %(limit)d MB.") % {"limit": MAX_CSV_BYTES // (1024 * 1024)}
        )
    rows = list(read_rows(decode_csv(data)))
    if not rows:
        raise ImportFileError(_("The file contains no learners."))
    if len(rows) > MAX_ROWS:
        raise ImportFileError(_("The file has more than %(limit)d lines.") % {"limit": MAX_ROWS})

    report = ImportReport()
    to_invite: list[User] = []
    to_notify: list[User] = []
    first_line: dict[str, int] = {}
    with transaction.atomic():
        for row in rows:
            error = _row_error(row, course, first_line)
            if error:
                report.errors.append(LineError(row.line, error))
                continue
            email = _clean_email(row.email)
            first_line[email] = row.line
            _import_row(row, email, course, report, to_invite, to_notify, resend_invitations)
        for user in to_invite:
            invitation_outbox_create(user=user, course=course, invited_by=invited_by)
        for user in to_notify:
            enrolment_outbox_create(user=user, course=course, invited_by=invited_by)
    return report


def _row_error(row: _Row, course: Course, first_line: dict[str, int]) -> str | None:
    if not row.email:
        return _("No email address.")
    try:
        email = _clean_email(row.email)
    except ValidationError:
        return _("%(email)s is not a valid email address.") % {"email": row.email}
    if email in first_line:
        return _("%(email)s is already listed on line %(line)d.") % {
            "email": email,
            "line": first_line[email],
        }
    if row.course and row.course != course.code:
        return _("The course code %(code)s is not this course (%(course)s).") % {
            "code": row.course,
            "course": course.code,
        }
    if len(row.name) > NAME_MAX:
        return _("The name is longer than %(limit)d characters.") % {"limit": NAME_MAX}
    return None


def _import_row(
    row: _Row,
    email: str,
    course: Course,
    report: ImportReport,
    to_invite: list[User],
    to_notify: list[User],
    resend: bool,
) -> None:
    entry = ImportedLearner(line=row.line, email=email, name=row.name)
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User(email=email, display_name=row.name)
        user.set_unusable_password()
        user.save()
        Enrollment.objects.create(user=user, course=course, role=Role.LEARNER)
        report.created.append(entry)
        to_invite.append(user)
        return
    # An existing enrolment is left as it is: never demote an instructor to learner.
    _enrollment, created = Enrollment.objects.get_or_create(
        user=user, course=course, defaults={"role": Role.LEARNER}
    )
    (report.enrolled if created else report.already_enrolled).append(entry)
    # Someone invited earlier (to this or another course) who never set a password still
    # needs the link: with this new enrolment, or on a re-import when asked to resend
    # (only then is it reported, as "sent again": it is already in this course).
    never_activated = not user.has_usable_password() and user.last_login is None
    if created:
        (to_invite if never_activated else to_notify).append(user)
    elif never_activated and resend:
        report.reinvited.append(entry)
        to_invite.append(user)


@dataclass
class PendingInvitation:
    """A learner of the course who has not set a password yet, and their latest invitation."""

    user: User
    email: OutboxEmail | None

    @property
    def state(self) -> str:
        """ "sent", "sending" (owed, not yet accepted by the mail server), "failed" (gave
        up after the attempt ceiling) or "none" (no invitation on record)."""
        if self.email is None:
            return "none"
        if self.email.sent_at is not None:
            return "sent"
        if self.email.given_up:
            return "failed"
        return "sending"


def pending_invitations(course: Course) -> list[PendingInvitation]:
    """Learners invited to ``course`` who never set a password, oldest enrolment first."""
    users = list(
        User.objects.filter(
            enrollments__course=course,
            enrollments__role=Role.LEARNER,
            is_active=True,
            last_login__isnull=True,
            password__startswith=UNUSABLE_PASSWORD_PREFIX,
        ).order_by("enrollments__created_at", "pk")
    )
    latest: dict[int, OutboxEmail] = {}
    for email in OutboxEmail.objects.filter(
        kind=EmailKind.INVITATION, course=course, recipient__in=users
    ).order_by("created_at", "pk"):
        latest[email.recipient_id] = email  # type: ignore[index]
    return [PendingInvitation(user, latest.get(user.pk)) for user in users]
