"""API routes under /api/ (namespace "api"); documented in docs/api.md."""

from django.urls import path

from server.api import views

app_name = "api"

urlpatterns = [
    path("me/", views.me, name="me"),
    path("submissions/", views.submissions, name="submissions"),
    path("submissions/<int:pk>/", views.submission, name="submission"),
]
