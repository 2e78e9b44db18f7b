"""Routes of the ops app, included at the site root."""

from django.urls import path

from server.ops import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
]
