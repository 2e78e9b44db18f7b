"""Django project for the katakana scoring server; loads the Celery app with Django."""

from server.celery import app as celery_app

__all__ = ("celery_app",)
