"""The ops app: connects the Celery signal that counts verdicts and run durations."""

from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "server.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        # Imported for its side effect: connecting task_postrun in every process
        # (web and workers) that sets Django up.
        from server.ops import signals  # noqa: F401
