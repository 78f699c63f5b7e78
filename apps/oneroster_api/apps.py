from django.apps import AppConfig


class OneRosterApiConfig(AppConfig):
    verbose_name = "OneRoster REST provider"
    name = "apps.oneroster_api"
    label = "oneroster_api"

    def ready(self) -> None:
        # Answer governance's offboarding signal (revoke what this spoke issued).
        from . import receivers  # noqa: F401
