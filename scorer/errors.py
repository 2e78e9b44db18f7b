"""Error classes a submission can end in, with learner-facing messages.

Messages are English msgids wrapped in ``gettext_noop``: Django's ``makemessages``
collects them into the project catalog (Japanese is the default language), the server
translates them with Django's gettext and the CLI with the stdlib reading the same
compiled catalog. So there is one catalog and no hard-coded Japanese in code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from scorer.translation import fill


def gettext_noop(message: str) -> str:
    """Mark a string for translation without translating it (same as Django's)."""
    return message


class ErrorClass(StrEnum):
    INVALID_ARCHIVE = "invalid_archive"
    NO_ENTRY_POINT = "no_entry_point"
    MISSING_MODULE = "missing_module"
    LEARNER_EXCEPTION = "learner_exception"
    WRONG_OUTPUT = "wrong_output"
    TIME_LIMIT = "time_limit"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_TOO_LARGE = "output_too_large"
    INFRASTRUCTURE = "infrastructure"
    # A legacy zip whose use of test_label the server could not follow: a final verdict
    # (rerunning cannot help) but not the learner's fault under the course's own rules.
    LEGACY_UNTRACEABLE = "legacy_untraceable"

    @property
    def charged_to_learner(self) -> bool:
        return self not in (ErrorClass.INFRASTRUCTURE, ErrorClass.LEGACY_UNTRACEABLE)

    @property
    def found_at_upload(self) -> bool:
        """Usually found by the intake, before any run: refused then, and not charged.

        The same class found by a run (``predict`` not defined when the notebook ran) is
        charged like any run of learner code: otherwise a zip that hides its ``predict``
        would get unlimited free runs on the hidden images.
        """
        return self in (ErrorClass.INVALID_ARCHIVE, ErrorClass.NO_ENTRY_POINT)


# Title and "what to do" advice per error class, shown to learners and in emails.
ERROR_CLASS_TEXT: dict[ErrorClass, tuple[str, str]] = {
    ErrorClass.INVALID_ARCHIVE: (
        gettext_noop("The uploaded file is not a usable zip archive"),
        gettext_noop(
            "Zip the folder that contains submit_katakana.ipynb, your model files and "
            "your own code (for example with 'zip -r NAME.zip FOLDER') and upload that zip."
        ),
    ),
    ErrorClass.NO_ENTRY_POINT: (
        gettext_noop("No entry point was found"),
        gettext_noop(
            "Put submit_katakana.ipynb (defining predict(test_data), or func_predict and "
            "main in the legacy form) at the top of the zipped folder."
        ),
    ),
    ErrorClass.MISSING_MODULE: (
        gettext_noop("A module your code imports is missing"),
        gettext_noop(
            "Include your own modules (for example the common/ folder) in the zip, or "
            "remove imports of libraries the scoring environment does not provide."
        ),
    ),
    ErrorClass.LEARNER_EXCEPTION: (
        gettext_noop("Your code raised an exception"),
        gettext_noop(
            "The message names the exception and, when it happened in one of your own "
            "files, the file and line. Run your zip with the local check from the guide "
            "page (python katakana-check/katakana_check.py your.zip): it shows the whole "
            "traceback on your computer. Fix the error, then upload again."
        ),
    ),
    ErrorClass.WRONG_OUTPUT: (
        gettext_noop("Your code returned output of the wrong form"),
        gettext_noop(
            "predict(test_data) must return one class id (0-14) per image, shape (N,), "
            "or one row of 15 scores per image, shape (N, 15)."
        ),
    ),
    ErrorClass.TIME_LIMIT: (
        gettext_noop("Your code ran past the time limit"),
        gettext_noop(
            "Load the model once rather than per batch, avoid Python loops over pixels, "
            "and check the running time with the local check from the guide page "
            "(python katakana-check/katakana_check.py your.zip)."
        ),
    ),
    ErrorClass.MEMORY_LIMIT: (
        gettext_noop("Your code ran out of memory"),
        gettext_noop(
            "Process the test data in batches and avoid keeping large intermediate "
            "arrays; the memory limit is shown on the course page."
        ),
    ),
    ErrorClass.OUTPUT_TOO_LARGE: (
        gettext_noop("Your code produced too much output"),
        gettext_noop("Remove large print statements and write no big files."),
    ),
    ErrorClass.LEGACY_UNTRACEABLE: (
        gettext_noop("The server could not follow how your code uses the test labels"),
        gettext_noop(
            "This did not use up a submission. Keep the course's accuracy code "
            "(np.argmax(test_label, axis=1) compared with == to your predictions) without "
            "converting test_label to a list or tensor, or define predict(test_data) as in "
            "the template notebook on the guide page."
        ),
    ),
    ErrorClass.INFRASTRUCTURE: (
        gettext_noop("The scoring server had a problem"),
        gettext_noop(
            "This was not your fault and did not use up a submission. It will be "
            "retried automatically; if it keeps failing the instructors are told."
        ),
    ),
}


@dataclass
class ScoringError(Exception):
    """A terminal outcome other than a score.

    ``code`` is a specific machine-readable reason (``archive_zip_slip``), ``message``
    its English msgid with ``%(name)s`` placeholders filled from ``params``, and
    ``detail`` what instructors see (traceback tail, offending entry).
    """

    error_class: ErrorClass
    code: str
    message: str
    params: dict[str, Any] = field(default_factory=dict)
    detail: str = ""

    def __post_init__(self) -> None:
        super().__init__(self.code)

    def render(self, translate: Any = None) -> str:
        return fill(translate or str, self.message, self.params)

    def __str__(self) -> str:
        return f"{self.error_class}/{self.code}: {self.render()}"
