from django.contrib import admin

from server.submissions.models import Submission


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    list_display = ("pk", "course", "learner", "original_name", "status", "accuracy", "created_at")
    list_filter = ("course", "status", "contract", "self_reported", "untrusted")
    search_fields = ("learner__email", "original_name", "sha256")
    readonly_fields = [f.name for f in Submission._meta.fields]
