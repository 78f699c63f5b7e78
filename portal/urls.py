from django.contrib import admin
from django.urls import include, path

from portal import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
    path("accounts/", include("apps.accounts.urls")),
    path("", include("apps.keys.urls")),
    path("", include("apps.oneroster_api.urls")),
    path("", include("apps.lti.urls")),
    path("", include("apps.delivery.urls")),
    path("admin/", admin.site.urls),
]
