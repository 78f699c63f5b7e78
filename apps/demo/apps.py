from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Sandbox seeding. Sits above every other app because it composes their demo services."""

    name = "apps.demo"
    label = "demo"
    verbose_name = "Demo data"
