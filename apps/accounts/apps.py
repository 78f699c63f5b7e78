from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    default = True
    name = "apps.accounts"
    label = "accounts"
    verbose_name = "Staff and access"

    def ready(self) -> None:
        from apps.accounts import signals  # noqa: F401


class AdminConfig(admin_apps.AdminConfig):
    """Replaces django.contrib.admin so the whole admin runs on our MFA-aware site."""

    default = False
    default_site = "apps.accounts.admin_site.InterchangeAdminSite"
