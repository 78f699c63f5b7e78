from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    verbose_name = "Deliveries and sources"
    name = "apps.delivery"
    label = "delivery"

    def ready(self) -> None:
        # Governance tells spokes to revoke what they issued; this spoke answers with its
        # destinations, links and bundles (apps/vendors/signals.py).
        from apps.delivery import receivers  # noqa: F401
