"""Routes of the OneRoster provider: OAuth 2 endpoints, every rostering endpoint, and the
OpenAPI document and vendor page."""

from django.urls import include, path, re_path

from apps.oneroster_api import docs, gradebook_urls, oauth_views, views
from apps.oneroster_api.endpoints import BASE_PATH, ENDPOINTS

app_name = "oneroster_api"

_base = BASE_PATH.lstrip("/")

urlpatterns = [
    path("oauth/token", oauth_views.ClientCredentialsTokenView.as_view(), name="token"),
    path("oauth/token/", oauth_views.ClientCredentialsTokenView.as_view()),
    path("oauth/revoke", oauth_views.ClientRevokeTokenView.as_view(), name="revoke"),
    path("oauth/revoke/", oauth_views.ClientRevokeTokenView.as_view()),
    path("oauth/introspect", oauth_views.StaffIntrospectView.as_view(), name="introspect"),
    path("oneroster/connect", docs.connect_view, name="connect"),
    # Under one prefix: a request matches it once, then only the rostering routes.
    path(f"{_base}/", include([
        path("openapi.json", docs.openapi_view, name="openapi"),
        *[path(ep.route, views.RosteringApi.as_view(endpoint=ep), name=ep.name)
          for ep in ENDPOINTS],
        re_path(r"^.*$", views.unknown_endpoint),
    ])),
    *gradebook_urls.urlpatterns,
]
