from django.apps import AppConfig


class SubmissionsConfig(AppConfig):
    name = "server.submissions"
    label = "submissions"

    def ready(self) -> None:
        from server.submissions import tasks  # noqa: F401  (the scoring task, published by name)
        from server.submissions.emails import register_emails

        register_emails()
