from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    verbose_name = "Monitoring"
    name = "apps.monitoring"
    label = "monitoring"

    def ready(self) -> None:
        # Operational gauges (queue depth, delivery lag) are read at scrape time.
        from apps.monitoring import metrics

        metrics.register_scrape_hook()
