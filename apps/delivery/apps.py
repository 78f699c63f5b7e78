from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    verbose_name = "Deliveries and sources"
    name = "apps.delivery"
    label = "delivery"

    def ready(self) -> None:
        # Governance tells spokes to revoke what they issued; this spoke answers with its
        # destinations, links and bundles (apps/vendors/signals.py).
        from apps.delivery import receivers  # noqa: F401
        from apps.delivery.secrets import register_wrapped_secrets

        # so a master key rotation re-wraps the SFTP keys and REST secrets too
        register_wrapped_secrets()
