"""Instructor routes for one course; every view answers 404 to anyone who does not teach it."""

from django.urls import path

from server.courses import views

urlpatterns = [
    path("courses/<slug:code>/leaderboard/", views.leaderboard, name="leaderboard"),
    path("courses/<slug:code>/leaderboard.csv", views.leaderboard_csv, name="leaderboard_csv"),
    path("courses/<slug:code>/submissions/", views.submission_browser, name="course_submissions"),
    path("courses/<slug:code>/rescore/", views.rescore_all, name="course_rescore"),
    path(
        "courses/<slug:code>/submissions/<int:pk>/rescore/",
        views.rescore_one,
        name="submission_rescore",
    ),
    path("courses/<slug:code>/cohort/", views.cohort_page, name="course_cohort"),
    path("courses/<slug:code>/similar/", views.similar_submissions, name="similar_submissions"),
    path("courses/<slug:code>/settings/", views.course_settings, name="course_settings"),
    path("courses/<slug:code>/testset/", views.testset_upload, name="course_testset"),
    path(
        "courses/<slug:code>/learners/<int:enrollment_id>/grant/",
        views.quota_grant,
        name="quota_grant",
    ),
]
