"""A test-only view mounted twice, under a vendor API prefix and under a browser path, that
reports what the middleware made of the request."""

from django.http import HttpRequest, JsonResponse
from django.urls import path


def probe(request: HttpRequest) -> JsonResponse:
    return JsonResponse({
        "authenticated": request.user.is_authenticated,
        "has_session": hasattr(request, "session"),
    })


urlpatterns = [
    path("ims/oneroster/probe", probe),
    path("portal-probe", probe),
]
