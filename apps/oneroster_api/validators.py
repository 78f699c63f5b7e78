"""The OAuth 2 validator: client credentials bound to the integration's approvals.

django-oauth-toolkit runs the protocol; this class decides the three questions that are
ours: is this client who it says it is (one of its live secrets, HTTP Basic or form
fields), may it have a token at all now (client not revoked, integration and vendor live,
credential issued for this environment), and which scopes (the request, or by default the
approval; a request for a scope that is not approved is refused with ``invalid_scope``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from urllib.parse import unquote_plus

from django.conf import settings
from oauth2_provider.models import get_application_model
from oauth2_provider.oauth2_validators import OAuth2Validator

from apps.governance.scopes import ONEROSTER_SCOPES
from apps.oneroster_api.models import ClientSecret

# Why authentication failed (kept on the oauthlib request for the token request record).
FAIL_NO_CREDENTIALS = "no_credentials"
FAIL_UNKNOWN_CLIENT = "unknown_client"
FAIL_BAD_SECRET = "bad_secret"  # noqa: S105 - a reason code
FAIL_REVOKED = "client_revoked"
FAIL_NOT_LIVE = "integration_not_live"
FAIL_ENVIRONMENT = "wrong_environment"


def _basic_credentials(request) -> tuple[str, str] | None:  # type: ignore[no-untyped-def]
    auth = request.headers.get("HTTP_AUTHORIZATION") or ""
    scheme, _, encoded = auth.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return ("", "")
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return ("", "")
    # RFC 6749 2.3.1: both are form-encoded before base64.
    return unquote_plus(client_id), unquote_plus(secret)


class InterchangeOAuth2Validator(OAuth2Validator):
    def authenticate_client(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        from apps.oneroster_api.services import secret_digest

        credentials = _basic_credentials(request)
        if credentials is None:
            client_id = getattr(request, "client_id", None) or ""
            secret = getattr(request, "client_secret", None) or ""
        else:
            client_id, secret = credentials
        request.interchange_failure = None
        request.interchange_client = None
        if not client_id or not secret or "\x00" in client_id or len(client_id) > 100:
            request.interchange_failure = FAIL_NO_CREDENTIALS
            return False
        Application = get_application_model()
        app = (
            Application.objects.select_related(
                "oneroster_client__integration__vendor"
            ).filter(client_id=client_id).first()
        )
        client = getattr(app, "oneroster_client", None) if app is not None else None
        if client is None:
            request.interchange_failure = FAIL_UNKNOWN_CLIENT
            return False
        request.interchange_client = client
        digest = secret_digest(secret)
        digests = ClientSecret.objects.live().filter(client=client).values_list("digest", flat=True)
        if not any(hmac.compare_digest(digest, d) for d in digests):
            request.interchange_failure = FAIL_BAD_SECRET
            return False
        integration = client.integration
        if client.revoked_at is not None:
            request.interchange_failure = FAIL_REVOKED
            return False
        if integration.environment != settings.INTERCHANGE_ENVIRONMENT:
            request.interchange_failure = FAIL_ENVIRONMENT
            return False
        if not integration.is_live:
            request.interchange_failure = FAIL_NOT_LIVE
            return False
        request.client = app
        request.client_id = client_id
        return True

    def authenticate_client_id(self, client_id, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        # Every client is confidential: a client id alone never authenticates.
        return False

    def client_authentication_required(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        return True

    def _approved_scopes(self, request) -> frozenset[str]:  # type: ignore[no-untyped-def]
        cached = getattr(request, "interchange_approved_scopes", None)
        if cached is not None:
            return cached
        from apps.governance.release import release_for

        client = getattr(request, "interchange_client", None)
        if client is None:
            return frozenset()
        release = release_for(client.integration)
        approved = (
            frozenset(s for s in release.scopes if s in ONEROSTER_SCOPES)
            if release.live else frozenset()
        )
        request.interchange_approved_scopes = approved
        return approved

    def validate_scopes(self, client_id, scopes, client, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        approved = self._approved_scopes(request)
        return bool(scopes) and set(scopes) <= approved

    def get_default_scopes(self, client_id, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        return sorted(self._approved_scopes(request))
