from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "server.outbox"
    label = "outbox"

    def ready(self) -> None:
        # Registers the send task in this process too (the web host, a shell): the outbox
        # publishes it by name, which an eager test run must resolve to the task itself.
        from server.outbox import tasks  # noqa: F401
