"""URL routes. No route serves stored submissions or test sets."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    # Learner pages (home, course, submission_detail, submission_status, submission_result).
    path("", include("server.submissions.urls")),
    # Instructor pages (leaderboard, CSV, submission browser, rescore, settings, test set).
    path("", include("server.courses.urls")),
    # Login, logout, password reset, invitations, account settings, class-list import.
    path("", include("server.accounts.urls")),
    path("api/", include("server.api.urls")),
    # The learner guide: packaging, contracts, error classes, quota, local check.
    path("guide/", include("server.guide.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("", include("server.ops.urls")),
]
