"""LTI Advantage service endpoints: the token endpoint, Names and Roles, and Assignment and
Grade Services. Thin: each view checks the bearer token (``tokens.service_token_check``),
calls one service or selector, and renders its JSON with the media type the specification
names. Every call leaves an access record.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from apps.audit.models import Channel
from apps.audit.services import access_record, disclosures_record
from apps.lti import claims as claims_
from apps.lti import nrps, tokens
from apps.lti.models import LtiContext, ResourceLink


def _json(body: Any, *, status: int = 200, content_type: str = "application/json",
          headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(json.dumps(body, separators=(",", ":")), status=status,
                            content_type=content_type)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@csrf_exempt  # a machine-to-machine endpoint, authenticated by the signed client assertion
@require_POST
def token(request: HttpRequest) -> HttpResponse:
    outcome = tokens.service_token_issue(params=request.POST.dict())
    response = JsonResponse(outcome.body, status=outcome.status)
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


# --- shared by the service endpoints ------------------------------------------------------------

ERROR_NOT_FOUND = "not_found"
ERROR_BAD_PARAMETER = "invalid_request"
DESCRIPTION_CONTEXT = "no such context for this tool"
DESCRIPTION_RLID = "rlid is not a resource link of this context"
DESCRIPTION_LIMIT = "limit must be an integer from 1 to {max}"
DESCRIPTION_OFFSET = "offset must be a non-negative integer"


class _Call:
    """One service call: its caller (checked token), timing, and its access record."""

    def __init__(self, request: HttpRequest, *, any_of: tuple[str, ...], channel: str,
                 endpoint: str) -> None:
        self.started = time.monotonic()
        self.channel = channel
        self.endpoint = endpoint
        self.access = tokens.service_token_check(
            authorization=request.headers.get("Authorization", ""), any_of=any_of)

    def record(self, status: int, records: int = 0) -> None:
        token = self.access.token
        access_record(
            integration_id=token.registration.integration_id if token else None,
            channel=self.channel, endpoint=self.endpoint, status_code=status, records=records,
            duration_ms=int((time.monotonic() - self.started) * 1000),
            client_id=token.registration.client_id if token else "",
        )

    def error(self, status: int, error: str, description: str = "") -> HttpResponse:
        self.record(status)
        headers = {}
        if status in (401, 403) and error in (tokens.ERROR_INVALID_TOKEN,
                                              tokens.ERROR_INSUFFICIENT_SCOPE):
            headers["WWW-Authenticate"] = f'Bearer error="{error}"'
        body = {"error": error}
        if description:
            body["error_description"] = description
        return _json(body, status=status, headers=headers)

    def refused(self) -> HttpResponse:
        return self.error(self.access.status, self.access.error)

    def context(self, context_id: Any) -> LtiContext | None:
        """The context, if it belongs to the caller's tool (and to its token's deployment)."""
        token = self.access.token
        assert token is not None
        context = LtiContext.objects.select_related("deployment").filter(
            pk=context_id, registration_id=token.registration_id).first()
        if context is None or (token.deployment_id is not None
                               and context.deployment_id != token.deployment_id):
            return None
        return context


def _int_param(request: HttpRequest, name: str, default: int) -> int | None:
    value = request.GET.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        return None


def _link_header(request: HttpRequest, **changes: Any) -> str:
    params = request.GET.dict()
    params.update({k: str(v) for k, v in changes.items()})
    return f'<{claims_.absolute(request.path)}?{urlencode(params)}>; rel="next"'


# --- Names and Roles ----------------------------------------------------------------------------


@csrf_exempt
@require_GET
def memberships(request: HttpRequest, context_id: Any) -> HttpResponse:
    call = _Call(request, any_of=(tokens.NRPS_SCOPE,), channel=Channel.LTI_NRPS,
                 endpoint="/lti/contexts/{id}/memberships")
    if not call.access.ok:
        return call.refused()
    context = call.context(context_id)
    if context is None:
        return call.error(404, ERROR_NOT_FOUND, DESCRIPTION_CONTEXT)
    rlid = request.GET.get("rlid")
    if rlid is not None and not _link_of_context(rlid, context):
        return call.error(404, ERROR_NOT_FOUND, DESCRIPTION_RLID)
    limit = _int_param(request, "limit", nrps.DEFAULT_LIMIT)
    if limit is None or not 1 <= limit <= nrps.MAX_LIMIT:
        return call.error(400, ERROR_BAD_PARAMETER, DESCRIPTION_LIMIT.format(max=nrps.MAX_LIMIT))
    offset = _int_param(request, "offset", 0)
    if offset is None or offset < 0:
        return call.error(400, ERROR_BAD_PARAMETER, DESCRIPTION_OFFSET)
    release = call.access.release
    assert release is not None
    page = nrps.memberships(release, context.class_sourced_id, role=request.GET.get("role"),
                            limit=limit, offset=offset)
    if page.context is None:
        return call.error(404, ERROR_NOT_FOUND, DESCRIPTION_CONTEXT)
    if page.user_sourced_ids:
        disclosures_record(
            vendor_id=release.vendor_id, integration_id=release.integration.pk,
            channel=Channel.LTI_NRPS, field_classes=page.field_classes,
            user_sourced_ids=page.user_sourced_ids,
        )
    call.record(200, records=len(page.members))
    headers = {}
    if page.has_more:
        headers["Link"] = _link_header(request, limit=limit, offset=offset + limit)
    body = {"id": claims_.absolute(request.get_full_path()), "context": page.context,
            "members": page.members}
    return _json(body, content_type=nrps.MEDIA_TYPE, headers=headers)


def _link_of_context(rlid: str, context: LtiContext) -> bool:
    try:
        link_id = uuid.UUID(rlid)
    except ValueError:
        return False
    return ResourceLink.objects.filter(
        pk=link_id, registration_id=context.registration_id, deployment_id=context.deployment_id,
        class_sourced_id=context.class_sourced_id,
    ).exists()
