"""The LTI Advantage token endpoint (``/lti/token``) and the bearer check of every service call.

A tool authenticates with a JWT client assertion (LTI Security Framework 1.0, RFC 7523) and
gets a short-lived opaque access token for the services it is approved for. The checks, in
order, and why each exists (platforms have shipped without most of them):

1. ``grant_type`` is ``client_credentials`` and the assertion type is JWT bearer;
2. the header says RS256 (never ``none``, never HS256: an HMAC "signed" with a public key
   would verify against that key);
3. ``iss`` = ``sub`` = a registered client id;
4. the signing key is the tool's: ``kid`` resolved through ``tool_keys`` (a tool with one
   pasted key may omit it; a JWKS tool may not, we never guess which key signed);
5. ``aud`` is this endpoint's URL (or the configured audience), ``exp`` is near (no more than
   ``MAX_ASSERTION_SECONDS`` ahead), ``iat`` is not ahead of our clock beyond a small leeway;
6. ``jti`` has not been seen: ``SET NX`` with an expiry in the shared cache (Redis in
   production), so of two concurrent requests carrying one assertion exactly one wins;
7. every requested scope is approved now (``release_for``): a request for one unapproved
   scope is refused outright rather than silently narrowed (DESIGN: security posture).

Every request, granted or refused, leaves a ``TokenRequest`` row. The token itself is
random; only its SHA-256 is stored, and ``service_token_check`` reads it (and the release)
on every call, so a suspension or a withdrawn approval acts on the next call.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from apps.governance import scopes as catalogue
from apps.governance.release import Release, release_for
from apps.lti import claims as claims_
from apps.lti.models import (
    Deployment,
    LtiContext,
    ServiceToken,
    TokenOutcome,
    TokenRequest,
    ToolRegistration,
)
from apps.lti.selectors import registration_by_client_id, service_token_by_hash
from apps.lti.tool_keys import ToolKeyError, public_key_from_pem, tool_public_key
from apps.vendors.models import IntegrationKind

TOKEN_PATH = "/lti/token"  # noqa: S105 (a path, not a secret)
TOKEN_SECONDS = 900  # DESIGN: access tokens live 15 minutes
MAX_ASSERTION_SECONDS = 300  # an assertion may not be valid for longer than this from now
LEEWAY_SECONDS = 10  # clock skew we tolerate on iat and exp
MAX_JTI_CHARS = 255
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEPLOYMENT_CLAIM = claims_.LTI + "deployment_id"

NRPS_SCOPE = catalogue.NRPS + "contextmembership.readonly"
AGS_LINEITEM = catalogue.AGS + "lineitem"
AGS_LINEITEM_READONLY = catalogue.AGS + "lineitem.readonly"
AGS_RESULT_READONLY = catalogue.AGS + "result.readonly"
AGS_SCORE = catalogue.AGS + "score"
# Each LTI scope and the service its approval must also carry.
SCOPE_SERVICES: dict[str, str] = {
    NRPS_SCOPE: "lti.nrps",
    AGS_LINEITEM: "lti.ags",
    AGS_LINEITEM_READONLY: "lti.ags",
    AGS_RESULT_READONLY: "lti.ags",
    AGS_SCORE: "lti.ags",
}

# --- RFC 6749 errors and our reasons (tests assert on these) -------------------------------------
INVALID_REQUEST = "invalid_request"
INVALID_CLIENT = "invalid_client"
INVALID_SCOPE = "invalid_scope"
UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"

REASON_GRANT_TYPE = "grant_type must be client_credentials"
REASON_ASSERTION_TYPE = "client_assertion_type must be " + ASSERTION_TYPE
REASON_NO_ASSERTION = "client_assertion is required"
REASON_MALFORMED = "the client assertion is not a readable JWT"
REASON_ALG = "the client assertion must be signed with RS256"
REASON_ISS_SUB = "iss and sub must both be the client id"
REASON_UNKNOWN_CLIENT = "unknown client"
REASON_NOT_LIVE = "the integration is not active"
REASON_KID = "kid does not name a key of this tool"
REASON_SIGNATURE = "the signature does not verify with the tool's key"
REASON_AUDIENCE = "aud must be the token endpoint"
REASON_EXPIRED = "the client assertion has expired"
REASON_CLAIMS = "the client assertion lacks iss, sub, aud, iat, exp or jti"
REASON_LIFETIME = f"exp may be at most {MAX_ASSERTION_SECONDS} seconds ahead"
REASON_IAT_FUTURE = "iat is in the future"
REASON_JTI = "jti must be a string of at most 255 characters"
REASON_REPLAY = "this client assertion (jti) was already used"
REASON_DEPLOYMENT = "the deployment id is not one of this tool's"
REASON_NO_SCOPE = "scope is required"
REASON_SCOPE = "not approved for: {scopes}"

# Bearer errors (RFC 6750) for service calls.
ERROR_INVALID_TOKEN = "invalid_token"  # noqa: S105 (an RFC 6750 error code)
ERROR_INSUFFICIENT_SCOPE = "insufficient_scope"


def token_url() -> str:
    return claims_.absolute(TOKEN_PATH)


def audiences() -> list[str]:
    """What ``aud`` may be: this endpoint's URL, or the configured audience, if any."""
    configured = getattr(settings, "INTERCHANGE_LTI_TOKEN_AUDIENCE", "") or ""
    return [token_url(), *([configured] if configured else [])]


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class TokenOutcomeResult:
    """What ``/lti/token`` answers: 200 with ``body``, or an RFC 6749 error body."""

    status: int
    body: dict[str, Any]
    registration: ToolRegistration | None = None


class _Refusal(Exception):
    def __init__(self, error: str, reason: str, registration: ToolRegistration | None = None,
                 status: int | None = None) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason
        self.registration = registration
        self.status = status or (401 if error == INVALID_CLIENT else 400)


def jti_first_use(client_id: str, jti: str, *, exp: int) -> bool:
    """Remember ``jti`` until the assertion could no longer verify; False on a replay.

    ``cache.add`` is ``SET key value NX EX ttl`` on the Redis cache (one atomic command), and
    the same test-and-set on the local-memory cache of a single-process sandbox.
    """
    ttl = max(int(exp - time.time()), 0) + LEEWAY_SECONDS + 1
    key = "lti:jti:" + _hash(f"{client_id}\x00{jti}")
    return bool(cache.add(key, 1, ttl))


def _verify_assertion(assertion: str) -> tuple[ToolRegistration, dict[str, Any]]:
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise _Refusal(INVALID_CLIENT, REASON_MALFORMED) from None
    if header.get("alg") != "RS256":
        raise _Refusal(INVALID_CLIENT, REASON_ALG)
    client_id, subject = unverified.get("iss"), unverified.get("sub")
    if not isinstance(client_id, str) or not client_id or client_id != subject:
        raise _Refusal(INVALID_CLIENT, REASON_ISS_SUB)
    registration = registration_by_client_id(client_id)
    if registration is None or registration.integration.kind != IntegrationKind.LTI_TOOL:
        raise _Refusal(INVALID_CLIENT, REASON_UNKNOWN_CLIENT)
    kid = header.get("kid")
    try:
        if not kid and registration.public_key_pem:
            key, _ = public_key_from_pem(registration.public_key_pem)
        else:
            key = tool_public_key(registration, kid if isinstance(kid, str) else None)
    except ToolKeyError:
        raise _Refusal(INVALID_CLIENT, REASON_KID, registration) from None
    try:
        payload = jwt.decode(
            assertion, key, algorithms=["RS256"], audience=audiences(), issuer=client_id,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "sub", "aud", "iat", "exp", "jti"]},
        )
    except jwt.InvalidSignatureError:
        raise _Refusal(INVALID_CLIENT, REASON_SIGNATURE, registration) from None
    except jwt.InvalidAudienceError:
        raise _Refusal(INVALID_CLIENT, REASON_AUDIENCE, registration) from None
    except jwt.ExpiredSignatureError:
        raise _Refusal(INVALID_CLIENT, REASON_EXPIRED, registration) from None
    except jwt.ImmatureSignatureError:
        raise _Refusal(INVALID_CLIENT, REASON_IAT_FUTURE, registration) from None
    except jwt.MissingRequiredClaimError:
        raise _Refusal(INVALID_CLIENT, REASON_CLAIMS, registration) from None
    except jwt.PyJWTError:
        raise _Refusal(INVALID_CLIENT, REASON_MALFORMED, registration) from None
    now = time.time()
    if not isinstance(payload["iat"], int | float) or payload["iat"] > now + LEEWAY_SECONDS:
        raise _Refusal(INVALID_CLIENT, REASON_IAT_FUTURE, registration)
    if payload["exp"] > now + MAX_ASSERTION_SECONDS + LEEWAY_SECONDS:
        raise _Refusal(INVALID_CLIENT, REASON_LIFETIME, registration)
    jti = payload["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:
        raise _Refusal(INVALID_CLIENT, REASON_JTI, registration)
    return registration, payload


def _deployment(registration: ToolRegistration, payload: dict[str, Any]) -> Deployment | None:
    """The deployment the token is bound to: the one the assertion names, else the tool's
    only one; None (any of the tool's deployments) when it has several and named none."""
    deployments = list(registration.deployments.all())
    named = payload.get(DEPLOYMENT_CLAIM)
    if named is not None:
        for deployment in deployments:
            if deployment.deployment_id == named:
                return deployment
        raise _Refusal(INVALID_REQUEST, REASON_DEPLOYMENT, registration)
    return deployments[0] if len(deployments) == 1 else None


def _approved(release: Release, scope: str) -> bool:
    service = SCOPE_SERVICES.get(scope)
    return service is not None and release.allows_scope(scope) and release.allows_service(service)


def approved_service_scopes(release: Release) -> tuple[bool, list[str]]:
    """(NRPS approved, the AGS scopes approved) for a launch's service claims."""
    nrps = _approved(release, NRPS_SCOPE)
    ags = [s for s in (AGS_LINEITEM, AGS_LINEITEM_READONLY, AGS_RESULT_READONLY, AGS_SCORE)
           if _approved(release, s)]
    return nrps, ags


# A grant is the token and its record, written together in one statement.
GRANT_SQL = """
WITH token AS (
    INSERT INTO lti_servicetoken (token_hash, registration_id, deployment_id, scopes,
                                  issued_at, expires_at)
    VALUES (%(hash)s, %(registration)s, %(deployment)s, %(scopes)s::varchar[], %(now)s,
            %(expires)s)
    RETURNING id
)
INSERT INTO lti_tokenrequest (at, client_id, registration_id, outcome, error, reason,
                              scopes_requested, scopes_granted, token_id)
SELECT %(now)s, %(client_id)s, %(registration)s, %(outcome)s, '', '',
       %(scopes)s::varchar[], %(scopes)s::varchar[], token.id
FROM token
"""


def service_token_issue(*, params: dict[str, str]) -> TokenOutcomeResult:
    """Answer a token request (the whole of ``/lti/token``); records the outcome either way."""
    now = timezone.now()
    requested = sorted(set((params.get("scope") or "").split()))
    registration: ToolRegistration | None = None
    try:
        if params.get("grant_type") != "client_credentials":
            raise _Refusal(UNSUPPORTED_GRANT_TYPE, REASON_GRANT_TYPE)
        if params.get("client_assertion_type") != ASSERTION_TYPE:
            raise _Refusal(INVALID_CLIENT, REASON_ASSERTION_TYPE)
        assertion = params.get("client_assertion") or ""
        if not assertion:
            raise _Refusal(INVALID_CLIENT, REASON_NO_ASSERTION)
        registration, payload = _verify_assertion(assertion)
        release = release_for(registration.integration, at=now)
        if not release.live:
            raise _Refusal(INVALID_CLIENT, REASON_NOT_LIVE, registration)
        deployment = _deployment(registration, payload)
        if not requested:
            raise _Refusal(INVALID_SCOPE, REASON_NO_SCOPE, registration)
        refused = [scope for scope in requested if not _approved(release, scope)]
        if refused:
            raise _Refusal(INVALID_SCOPE, REASON_SCOPE.format(scopes=" ".join(refused)),
                           registration)
        # Last, so that a refused request does not spend the assertion's jti.
        if not jti_first_use(registration.client_id, payload["jti"], exp=int(payload["exp"])):
            raise _Refusal(INVALID_CLIENT, REASON_REPLAY, registration)
    except _Refusal as refusal:
        registration = refusal.registration or registration
        TokenRequest.objects.create(
            at=now, client_id=_client_id_of(params, registration), registration=registration,
            outcome=TokenOutcome.REFUSED, error=refusal.error, reason=refusal.reason[:200],
            scopes_requested=requested[:20],
        )
        return TokenOutcomeResult(
            status=refusal.status,
            body={"error": refusal.error, "error_description": refusal.reason},
            registration=registration,
        )
    raw = secrets.token_urlsafe(32)
    with connection.cursor() as cursor:
        cursor.execute(GRANT_SQL, {
            "hash": _hash(raw), "registration": registration.pk,
            "deployment": deployment.pk if deployment is not None else None,
            "scopes": requested, "now": now,
            "expires": now + dt.timedelta(seconds=TOKEN_SECONDS),
            "client_id": registration.client_id, "outcome": TokenOutcome.GRANTED,
        })
    return TokenOutcomeResult(
        status=200,
        body={"access_token": raw, "token_type": "Bearer", "expires_in": TOKEN_SECONDS,
              "scope": " ".join(requested)},
        registration=registration,
    )


def _client_id_of(params: dict[str, str], registration: ToolRegistration | None) -> str:
    if registration is not None:
        return registration.client_id
    try:
        iss = jwt.decode(params.get("client_assertion") or "",
                         options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return ""
    return iss[:100] if isinstance(iss, str) else ""


# --- the bearer check of every service call -----------------------------------------------------


@dataclass(frozen=True)
class ServiceAccess:
    """A service call's verified caller: its token, tool and release (read afresh)."""

    ok: bool
    status: int = 200
    error: str = ""
    token: ServiceToken | None = None
    release: Release | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    # the context the call named, read with the token (None: not the tool's, or not asked)
    context_id: Any = None
    context: LtiContext | None = None

    @property
    def registration(self) -> ToolRegistration:
        assert self.token is not None
        return self.token.registration


def bearer_of(authorization: str) -> str:
    scheme, _, value = (authorization or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def service_token_check(*, authorization: str, any_of: tuple[str, ...],
                        context_id: Any = None) -> ServiceAccess:
    """The caller of a service, if its bearer token is current and carries (and is still
    approved for) one of ``any_of``. Reads the token and the release on every call; with
    ``context_id``, reads the context too (``ServiceAccess.context``: None unless it belongs
    to the token's tool)."""
    raw = bearer_of(authorization)
    if not raw:
        return ServiceAccess(ok=False, status=401, error=ERROR_INVALID_TOKEN)
    now = timezone.now()
    found = service_token_by_hash(_hash(raw), now=now, context_id=context_id)
    if found is None:
        return ServiceAccess(ok=False, status=401, error=ERROR_INVALID_TOKEN)
    token, context, generations = found
    release = release_for(token.registration.integration, at=now, generations=generations)
    if not release.live:
        return ServiceAccess(ok=False, status=401, error=ERROR_INVALID_TOKEN, token=token)
    usable = frozenset(s for s in token.scopes if _approved(release, s))
    if not usable & set(any_of):
        return ServiceAccess(ok=False, status=403, error=ERROR_INSUFFICIENT_SCOPE, token=token,
                             release=release)
    return ServiceAccess(ok=True, token=token, release=release, scopes=usable,
                         context_id=context_id, context=context)


def service_tokens_prune(*, now: dt.datetime | None = None) -> int:
    """Delete tokens a day past their expiry (their token requests keep the record)."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=1)
    deleted, _ = ServiceToken.objects.filter(expires_at__lt=cutoff).delete()
    return deleted
