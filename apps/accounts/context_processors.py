from django.conf import settings
from django.http import HttpRequest


def environment(request: HttpRequest) -> dict[str, str]:
    """The environment banner, so nobody mistakes the sandbox for production."""
    return {"interchange_environment": settings.INTERCHANGE_ENVIRONMENT}
