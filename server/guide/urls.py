"""Routes of the guide app, included at ``/guide/``."""

from django.urls import path

from server.guide import views

urlpatterns = [
    path("", views.guide, name="guide"),
    path("kit/submit_katakana.ipynb", views.kit_notebook, name="guide_kit_notebook"),
    path("kit/katakana-check.zip", views.checker_kit, name="guide_checker_kit"),
]
