from django.apps import AppConfig


class VendorsConfig(AppConfig):
    verbose_name = "Vendors and integrations"
    name = "apps.vendors"
    label = "vendors"
