from django.apps import AppConfig


class OffboardingConfig(AppConfig):
    default = True
    name = "apps.offboarding"
    label = "offboarding"
    verbose_name = "Offboarding and control packs"
