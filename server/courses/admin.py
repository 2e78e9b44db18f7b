from django.contrib import admin

from server.courses.models import Course, Enrollment, QuotaGrant, TestSet


class EnrollmentInline(admin.TabularInline):
    model = Enrollment
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Course)
class CourseAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "daily_quota",
        "pass_threshold",
        "legacy_allowed",
        "legacy_labelled_allowed",
        "self_reported_counts",
        "opens_at",
        "closes_at",
    )
    search_fields = ("code", "name")
    list_filter = ("legacy_allowed", "legacy_labelled_allowed", "self_reported_counts")
    inlines = [EnrollmentInline]


@admin.register(TestSet)
class TestSetAdmin(admin.ModelAdmin):
    list_display = ("course", "version", "n", "is_active", "created_at")
    readonly_fields = ("directory", "n", "class_counts", "sha256_data", "sha256_labels")


@admin.register(QuotaGrant)
class QuotaGrantAdmin(admin.ModelAdmin):
    list_display = ("enrollment", "day", "extra", "reason", "granted_by")
