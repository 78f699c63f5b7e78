from django.urls import path

from apps.lti import apis, views

app_name = "lti"

# /lti/jwks is served by apps.keys (the platform's keys live there).
urlpatterns = [
    path("launch/", views.launch_page, name="launch-page"),
    path("launch/start", views.launch_start, name="launch-start"),
    path("launch/login/", views.PortalLoginView.as_view(), name="login"),
    path("launch/logout/", views.PortalLogoutView.as_view(), name="logout"),
    path("lti/auth", views.auth, name="auth"),
    path("lti/deep-linking/return", views.deep_linking_return, name="deep-linking-return"),
    path("lti/token", apis.token, name="token"),
    path("lti/contexts/<uuid:context_id>/memberships", apis.memberships, name="memberships"),
]
