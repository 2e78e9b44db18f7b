"""Learner routes: the course page (upload), a submission's page, its status and result fragment."""

from django.urls import path

from server.submissions import views

urlpatterns = [
    path("", views.home, name="home"),
    path("courses/<slug:code>/", views.course_page, name="course"),
    path("courses/<slug:code>/my-history.csv", views.my_history_csv, name="my_history_csv"),
    path("courses/<slug:code>/my-history.png", views.my_history_png, name="my_history_png"),
    path("submissions/<int:pk>/", views.submission_detail, name="submission_detail"),
    path("submissions/<int:pk>/status.json", views.submission_status, name="submission_status"),
    path("submissions/<int:pk>/result/", views.submission_result, name="submission_result"),
    path("submissions/<int:pk>/archive.zip", views.submission_archive, name="submission_archive"),
    path(
        "submissions/<int:pk>/training-images/<int:index>.png",
        views.training_image,
        name="training_image",
    ),
]
