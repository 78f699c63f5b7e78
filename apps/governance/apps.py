from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    verbose_name = "Governance"
    name = "apps.governance"
    label = "governance"
