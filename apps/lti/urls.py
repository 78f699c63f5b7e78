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
    path("lti/contexts/<uuid:context_id>/lineitems", apis.line_items, name="line-items"),
    path("lti/contexts/<uuid:context_id>/lineitems/<uuid:item_id>", apis.line_item,
         name="line-item"),
    path("lti/contexts/<uuid:context_id>/lineitems/<uuid:item_id>/scores", apis.scores,
         name="scores"),
    path("lti/contexts/<uuid:context_id>/lineitems/<uuid:item_id>/results", apis.results,
         name="results"),
]
