"""JWKS endpoints: public, cacheable briefly, built by selectors."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from apps.keys import selectors

# Short enough that a revocation leaves caches within minutes; the next key is
# published a whole rotation ahead, so caching never hides a key that signs.
JWKS_MAX_AGE_SECONDS = 300


def _jwks_response(key_set: dict) -> JsonResponse:
    response = JsonResponse(key_set)
    response["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE_SECONDS}"
    response["Content-Type"] = "application/json"
    return response


@require_GET
def lti_jwks(request: HttpRequest) -> JsonResponse:
    return _jwks_response(selectors.lti_jwks())


@require_GET
def evidence_jwks(request: HttpRequest) -> JsonResponse:
    return _jwks_response(selectors.evidence_jwks())
