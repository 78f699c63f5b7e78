from django.apps import AppConfig


class AuditConfig(AppConfig):
    verbose_name = "Audit and disclosure"
    name = "apps.audit"
    label = "audit"
