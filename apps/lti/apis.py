"""LTI Advantage service endpoints: the token endpoint, Names and Roles, and Assignment and
Grade Services. Thin: each view checks the bearer token (``tokens.service_token_check``),
calls one service or selector, and renders its JSON with the media type the specification
names. Every call leaves an access record.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.lti import tokens


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
