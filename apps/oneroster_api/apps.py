from django.apps import AppConfig


class OneRosterApiConfig(AppConfig):
    verbose_name = "OneRoster REST provider"
    name = "apps.oneroster_api"
    label = "oneroster_api"
