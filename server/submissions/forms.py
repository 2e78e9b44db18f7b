"""Upload form: the page checks type and size in the browser; the server re-checks everything."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext_lazy as _


class UploadForm(forms.Form):
    archive = forms.FileField(
        label=_("Submission zip"),
        help_text=_("A zip of the folder with submit_katakana.ipynb, your model and your code."),
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}),
    )

    def clean_archive(self) -> UploadedFile:
        upload: UploadedFile = self.cleaned_data["archive"]
        limit = settings.KATAKANA_MAX_UPLOAD_MB * 1024 * 1024
        if (upload.size or 0) > limit:
            raise forms.ValidationError(
                _("The file is %(size)s MB; the limit is %(limit)s MB."),
                params={
                    "size": round((upload.size or 0) / 1024 / 1024, 1),
                    "limit": settings.KATAKANA_MAX_UPLOAD_MB,
                },
                code="too_large",
            )
        if not (upload.name or "").lower().endswith(".zip"):
            raise forms.ValidationError(
                _("Upload a .zip file (got %(name)s)."),
                params={"name": upload.name},
                code="not_zip",
            )
        return upload
