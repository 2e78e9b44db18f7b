from django.apps import AppConfig


class CoursesConfig(AppConfig):
    name = "server.courses"
    label = "courses"
