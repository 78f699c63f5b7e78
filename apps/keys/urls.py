from django.urls import path

from apps.keys import views

app_name = "keys"

urlpatterns = [
    path("lti/jwks", views.lti_jwks, name="lti-jwks"),
    path("keys/evidence/jwks", views.evidence_jwks, name="evidence-jwks"),
]
