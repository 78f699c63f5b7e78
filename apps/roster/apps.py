from django.apps import AppConfig


class RosterConfig(AppConfig):
    verbose_name = "Roster"
    name = "apps.roster"
    label = "roster"
