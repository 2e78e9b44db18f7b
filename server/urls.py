"""URL routes. No route serves stored submissions or test sets."""

from django.contrib import admin
from django.urls import include, path

from server.accounts.views import language_set

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
    # The header's language switch; it also stores the choice on a signed-in account.
    path("i18n/setlang/", language_set, name="set_language"),
    path("admin/", admin.site.urls),
    path("", include("server.ops.urls")),
]
