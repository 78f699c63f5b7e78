from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    verbose_name = "Monitoring"
    name = "apps.monitoring"
    label = "monitoring"

    def ready(self) -> None:
        # Operational gauges (queue depth, delivery lag) are read at scrape time.
        from apps.monitoring import metrics

        metrics.register_scrape_hook()

        # webhook secrets are wrapped by the master key: a rotation must re-wrap them
        from apps.keys.services import WrappedField, wrapped_field_register
        from apps.monitoring.models import SECRET_PURPOSE, AlertChannel

        wrapped_field_register(WrappedField(
            model=AlertChannel, field="secret_wrapped", key_id_field="secret_master_key_id",
            purpose=lambda row: SECRET_PURPOSE, object_id=lambda row: str(row.secret_ref),
        ))
