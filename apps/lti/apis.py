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
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.audit.models import Channel
from apps.audit.services import access_record, disclosures_record
from apps.lti import ags, nrps, tokens
from apps.lti import claims as claims_
from apps.lti.models import AgsLineItem, LtiContext, ResourceLink
from apps.lti.selectors import lti_context_of


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
                 endpoint: str, context_id: Any = None) -> None:
        self.started = time.monotonic()
        self.channel = channel
        self.endpoint = endpoint
        self.access = tokens.service_token_check(
            authorization=request.headers.get("Authorization", ""), any_of=any_of,
            context_id=context_id)

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
        if context_id is not None and context_id == self.access.context_id:
            context = self.access.context  # read with the token
        else:
            context = lti_context_of(context_id, token.registration_id)
        if context is None or (token.deployment_id is not None
                               and context.deployment_id != token.deployment_id):
            return None
        return context


def _item_of_call(call: _Call, context_id: Any, item_id: Any) -> AgsLineItem | None:
    """The line item, with its context, in one query: only if the context is the caller's
    (tool, and the token's deployment) and the item is in that context."""
    token = call.access.token
    assert token is not None
    item = AgsLineItem.objects.select_related("context").filter(
        pk=item_id, context_id=context_id, context__registration_id=token.registration_id,
    ).first()
    if item is None or (token.deployment_id is not None
                        and item.context.deployment_id != token.deployment_id):
        return None
    return item


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
                 endpoint="/lti/contexts/{id}/memberships", context_id=context_id)
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


# --- Assignment and Grade Services --------------------------------------------------------------

AGS_ENDPOINT = "/lti/contexts/{id}/lineitems"
DESCRIPTION_LINE_ITEM = "no such line item in this context"
DESCRIPTION_MEDIA_TYPE = "send {expected} (or application/json)"
_READ_ITEMS = (tokens.AGS_LINEITEM, tokens.AGS_LINEITEM_READONLY)


def _ags_call(request: HttpRequest, any_of: tuple[str, ...], endpoint: str,
              context_id: Any) -> tuple[_Call, LtiContext | None, dict | None, HttpResponse | None]:
    """The checked caller, its context and the class as released, or the refusal."""
    call = _Call(request, any_of=any_of, channel=Channel.LTI_AGS, endpoint=endpoint,
                 context_id=context_id)
    if not call.access.ok:
        return call, None, None, call.refused()
    context = call.context(context_id)
    release = call.access.release
    klass = ags.released_class(release, context.class_sourced_id) if context else None
    if context is None or klass is None:
        return call, None, None, call.error(404, ERROR_NOT_FOUND, DESCRIPTION_CONTEXT)
    return call, context, klass, None


def _body(request: HttpRequest, media_type: str) -> Any:
    content_type = request.content_type or ""
    if content_type not in (media_type, "application/json"):
        raise ags.AgsError(DESCRIPTION_MEDIA_TYPE.format(expected=media_type), status=415,
                           error="unsupported_media_type")
    try:
        return json.loads(request.body or b"null")
    except ValueError:
        raise ags.AgsError(ags.ERROR_BODY) from None


def _paging(request: HttpRequest, call: _Call) -> tuple[int, int] | HttpResponse:
    limit = _int_param(request, "limit", ags.DEFAULT_LIMIT)
    if limit is None or not 1 <= limit <= ags.MAX_LIMIT:
        return call.error(400, ERROR_BAD_PARAMETER, DESCRIPTION_LIMIT.format(max=ags.MAX_LIMIT))
    offset = _int_param(request, "offset", 0)
    if offset is None or offset < 0:
        return call.error(400, ERROR_BAD_PARAMETER, DESCRIPTION_OFFSET)
    return limit, offset


@csrf_exempt
@require_http_methods(["GET", "POST"])
def line_items(request: HttpRequest, context_id: Any) -> HttpResponse:
    post = request.method == "POST"
    call, context, klass, refusal = _ags_call(
        request, (tokens.AGS_LINEITEM,) if post else _READ_ITEMS, AGS_ENDPOINT, context_id)
    if refusal is not None:
        return refusal
    assert context is not None and klass is not None and call.access.release is not None
    if post:
        try:
            data = ags.line_item_input(_body(request, ags.LINEITEM_MEDIA), context=context)
            item = ags.line_item_create(context=context, release=call.access.release,
                                        klass=klass, data=data)
        except ags.AgsError as exc:
            return call.error(exc.status, exc.error, exc.description)
        call.record(201, records=1)
        return _json(ags.line_item_json(item), status=201, content_type=ags.LINEITEM_MEDIA)
    paging = _paging(request, call)
    if isinstance(paging, HttpResponse):
        return paging
    limit, offset = paging
    items, has_more = ags.line_items_list(
        context, resource_link_id=request.GET.get("resource_link_id"),
        resource_id=request.GET.get("resource_id"), tag=request.GET.get("tag"),
        limit=limit, offset=offset)
    call.record(200, records=len(items))
    headers = ({"Link": _link_header(request, limit=limit, offset=offset + limit)}
               if has_more else {})
    return _json([ags.line_item_json(i) for i in items], content_type=ags.CONTAINER_MEDIA,
                 headers=headers)


@csrf_exempt
@require_http_methods(["GET", "PUT", "DELETE"])
def line_item(request: HttpRequest, context_id: Any, item_id: Any) -> HttpResponse:
    read = request.method == "GET"
    call, context, klass, refusal = _ags_call(
        request, _READ_ITEMS if read else (tokens.AGS_LINEITEM,), AGS_ENDPOINT + "/{item}",
        context_id)
    if refusal is not None:
        return refusal
    assert context is not None and klass is not None and call.access.release is not None
    item = ags.line_item_of(context, item_id)
    if item is None:
        return call.error(404, ERROR_NOT_FOUND, DESCRIPTION_LINE_ITEM)
    try:
        if request.method == "DELETE":
            ags.line_item_delete(item=item, release=call.access.release)
            call.record(204, records=1)
            return HttpResponse(status=204)
        if request.method == "PUT":
            body = _body(request, ags.LINEITEM_MEDIA)
            if isinstance(body, dict) and body.get("id") not in (None, ags.line_item_url(item)):
                raise ags.AgsError(ags.ERROR_ID_MISMATCH)
            data = ags.line_item_input(body, context=context)
            item = ags.line_item_update(item=item, release=call.access.release, klass=klass,
                                        data=data)
    except ags.AgsError as exc:
        return call.error(exc.status, exc.error, exc.description)
    call.record(200, records=1)
    return _json(ags.line_item_json(item), content_type=ags.LINEITEM_MEDIA)


def _item_call(request: HttpRequest, any_of: tuple[str, ...], endpoint: str, context_id: Any,
               item_id: Any) -> tuple[_Call, AgsLineItem | None, HttpResponse | None]:
    """Scores and results: the caller and the item (the class's release is enforced by the
    member and result queries themselves, so no separate class read)."""
    call = _Call(request, any_of=any_of, channel=Channel.LTI_AGS, endpoint=endpoint)
    if not call.access.ok:
        return call, None, call.refused()
    item = _item_of_call(call, context_id, item_id)
    if item is None:
        if call.context(context_id) is None:
            return call, None, call.error(404, ERROR_NOT_FOUND, DESCRIPTION_CONTEXT)
        return call, None, call.error(404, ERROR_NOT_FOUND, DESCRIPTION_LINE_ITEM)
    return call, item, None


@csrf_exempt
@require_POST
def scores(request: HttpRequest, context_id: Any, item_id: Any) -> HttpResponse:
    call, item, refusal = _item_call(request, (tokens.AGS_SCORE,),
                                     AGS_ENDPOINT + "/{item}/scores", context_id, item_id)
    if refusal is not None:
        return refusal
    assert item is not None and call.access.release is not None
    try:
        score = ags.score_input(_body(request, ags.SCORE_MEDIA))
        ags.score_submit(item=item, release=call.access.release, score=score)
    except ags.AgsError as exc:
        return call.error(exc.status, exc.error, exc.description)
    call.record(204, records=1)
    return HttpResponse(status=204)


@csrf_exempt
@require_GET
def results(request: HttpRequest, context_id: Any, item_id: Any) -> HttpResponse:
    call, item, refusal = _item_call(request, (tokens.AGS_RESULT_READONLY,),
                                     AGS_ENDPOINT + "/{item}/results", context_id, item_id)
    if refusal is not None:
        return refusal
    assert item is not None and call.access.release is not None
    paging = _paging(request, call)
    if isinstance(paging, HttpResponse):
        return paging
    limit, offset = paging
    release = call.access.release
    page = ags.results_list(item=item, release=release, user_id=request.GET.get("user_id"),
                            limit=limit, offset=offset)
    if page.user_sourced_ids:
        disclosures_record(
            vendor_id=release.vendor_id, integration_id=release.integration.pk,
            channel=Channel.LTI_AGS, field_classes=["identifier", "assessment"],
            user_sourced_ids=page.user_sourced_ids,
        )
    call.record(200, records=len(page.results))
    headers = ({"Link": _link_header(request, limit=limit, offset=offset + limit)}
               if page.has_more else {})
    return _json(page.results, content_type=ags.RESULTS_MEDIA, headers=headers)
