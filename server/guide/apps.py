"""The guide app: one public page, no models."""

from django.apps import AppConfig


class GuideConfig(AppConfig):
    name = "server.guide"
    label = "guide"
    verbose_name = "Learner guide"
