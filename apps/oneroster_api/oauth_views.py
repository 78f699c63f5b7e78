"""The OAuth 2 endpoints of the provider: token (client credentials only), RFC 7009
revocation, and RFC 7662 introspection for staff.

The token endpoint records every request, granted or refused, with the client, the
environment and the scopes asked for and granted, and counts refusals in the
``interchange_token_failures_total`` metric.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from urllib.parse import unquote_plus

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.models import AccessToken
from oauth2_provider.views import RevokeTokenView, TokenView

from apps.audit.models import Channel
from apps.audit.services import access_record
from apps.oneroster_api.models import OneRosterClient, TokenOutcome, TokenRequestRecord
from apps.oneroster_api.validators import InterchangeOAuth2Validator
from portal.metrics import TOKEN_FAILURES

GRANT_TYPE = "client_credentials"
PERMISSION_INTROSPECT = "oneroster_api.view_onerosterclient"


def _client_id_of(request) -> str:  # type: ignore[no-untyped-def]
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return ""
        return unquote_plus(decoded.partition(":")[0])[:100]
    return (request.POST.get("client_id") or "")[:100]


def _json_error(error: str, status: int = 400) -> HttpResponse:
    response = JsonResponse({"error": error}, status=status)
    response["Cache-Control"] = "no-store"
    return response


@method_decorator(csrf_exempt, name="dispatch")
class ClientCredentialsTokenView(TokenView):
    validator_class = InterchangeOAuth2Validator

    def post(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        if request.POST.get("grant_type") != GRANT_TYPE:
            response = _json_error("unsupported_grant_type")
        else:
            response = self.authorization_flow_token_response(request)
        self._record(request, response, started)
        return response

    def _record(self, request, response, started: float) -> None:  # type: ignore[no-untyped-def]
        client_id = _client_id_of(request)
        client = (
            OneRosterClient.objects.select_related("integration")
            .filter(application__client_id=client_id).first() if client_id else None
        )
        try:
            body = json.loads(response.content or b"{}")
        except ValueError:
            body = {}
        granted = response.status_code == 200
        error = "" if granted else str(body.get("error", "error"))[:50]
        TokenRequestRecord.objects.create(
            client_id=client_id,
            integration=client.integration if client else None,
            environment=settings.INTERCHANGE_ENVIRONMENT,
            outcome=TokenOutcome.GRANTED if granted else TokenOutcome.REFUSED,
            error=error,
            requested_scopes=(request.POST.get("scope") or "")[:2000],
            granted_scopes=str(body.get("scope", "")) if granted else "",
            remote_addr=request.META.get("REMOTE_ADDR") or None,
        )
        if not granted:
            TOKEN_FAILURES.labels(channel=Channel.ONEROSTER_REST, error=error).inc()
        access_record(
            integration_id=client.integration_id if client else None,
            channel=Channel.ONEROSTER_REST, endpoint="/oauth/token",
            status_code=response.status_code, records=0,
            duration_ms=int((time.perf_counter() - started) * 1000), client_id=client_id,
        )


@method_decorator(csrf_exempt, name="dispatch")
class ClientRevokeTokenView(RevokeTokenView):
    """RFC 7009: a client revokes one of its own tokens (always 200, as the RFC says)."""

    validator_class = InterchangeOAuth2Validator


class StaffIntrospectView(View):
    """RFC 7662 introspection for staff signed in to the portal (with the permission to see
    OneRoster clients): is this token active, for which client and scopes, until when."""

    def post(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
        user = request.user
        if not (user.is_authenticated and user.is_staff and user.has_perm(PERMISSION_INTROSPECT)):
            return _json_error("unauthorized_client", 403 if user.is_authenticated else 401)
        token = request.POST.get("token") or ""
        checksum = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        row = (
            AccessToken.objects.select_related("application__oneroster_client__integration")
            .filter(token_checksum=checksum).first()
        )
        client = getattr(row.application, "oneroster_client", None) if row else None
        if (row is None or row.expires <= timezone.now() or client is None
                or client.revoked_at is not None or not client.integration.is_live):
            return JsonResponse({"active": False})
        return JsonResponse({
            "active": True,
            "scope": row.scope,
            "client_id": row.application.client_id,
            "token_type": "Bearer",
            "exp": int(row.expires.timestamp()),
            "iat": int(row.created.timestamp()),
            "integration": client.integration.name,
            "environment": client.integration.environment,
        })
