"""Writes of the LTI platform: registrations, launch initiation, the OIDC authentication
response, and Deep Linking responses.

``auth_respond`` is the whole of ``/lti/auth``. Its order is the security argument:

1. the client id must name a registration, and the ``redirect_uri`` must be exactly one of its
   registered URIs (string equality: no prefix, host-only or normalised matching). Until
   then an error is a plain 400 page, never a redirect, so nobody can bounce a user (or an
   error) to a URI of their choosing;
2. then every other parameter is checked, and failures are answered the OIDC way, posted to
   the validated URI with the ``state``;
3. the message hint is consumed atomically (one ``UPDATE ... WHERE used_at IS NULL``), so
   it launches once;
4. ``launch_context`` is read afresh (the person, the class, the release): a user who may
   not launch sees one plain message that gives no reason;
5. the id_token is signed now, with the active LTI key (``kid`` always), and lives minutes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from apps.audit import audit
from apps.audit.models import Channel
from apps.audit.services import access_record, disclosures_record
from apps.keys.models import SigningKey
from apps.keys.services import JWT_ALGORITHM, load_private_key, sign_jwt
from apps.lti import claims as claims_
from apps.lti.models import (
    DeepLinkingRequest,
    Deployment,
    LaunchHint,
    LtiContext,
    MessageType,
    ResourceLink,
    ResourceLinkOrigin,
    ToolRegistration,
)
from apps.lti.selectors import (
    LaunchContext,
    launch_context,
    launch_context_from,
    launch_release,
    launch_statement,
    registration_by_client_id,
)
from apps.lti.tool_keys import ToolKeyError, check_jwks_url, public_key_from_pem, tool_public_key
from apps.vendors.models import Integration, IntegrationKind
from portal.db import prepared

HINT_SECONDS = 300
DEEP_LINKING_SECONDS = 3600
JWT_LEEWAY_SECONDS = 60
MAX_CONTENT_ITEMS = 50

# --- messages (tests assert on these) -----------------------------------------------------------
REFUSED = "This tool is not available to you right now."
ERROR_BAD_REQUEST = "This launch request is not valid."
ERROR_UNKNOWN_CLIENT = "Unknown client."
ERROR_REDIRECT_URI = "The redirect URI is not registered for this tool."
ERROR_NOT_LTI = "Integration {name} is not an LTI tool integration."
ERROR_URL_SCHEME = "{what} must be an https URL outside the sandbox: {url}"
ERROR_URL = "{what} is not an absolute URL without a fragment: {url}"
ERROR_KEY_SOURCE = "Give exactly one of a JWKS URL and a public key."
ERROR_URIS_REQUIRED = "Give at least one redirect URI and one target link URI."
ERROR_DL_INVALID = "The Deep Linking response is not valid."
ERROR_DL_EXPIRED = "The Deep Linking request has expired or was already answered."

OIDC_ERRORS = {
    "scope": ("invalid_scope", "scope must be openid"),
    "response_type": ("unsupported_response_type", "response_type must be id_token"),
    "response_mode": ("invalid_request", "response_mode must be form_post"),
    "prompt": ("invalid_request", "prompt must be none"),
    "nonce": ("invalid_request", "nonce is required"),
    "login": ("login_required", "the login hint is not the signed-in user"),
    "hint": ("invalid_request", "lti_message_hint is invalid, used or expired"),
}


class RegistrationError(ValueError):
    """A registration was refused; ``str(exc)`` says why."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- registrations ------------------------------------------------------------------------------


def _check_url(url: str, what: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc or parts.fragment:
        raise RegistrationError(ERROR_URL.format(what=what, url=url))
    allowed = ("http", "https") if settings.INTERCHANGE_ENVIRONMENT == "sandbox" else ("https",)
    if parts.scheme not in allowed:
        raise RegistrationError(ERROR_URL_SCHEME.format(what=what, url=url))
    return url


def registration_create(  # type: ignore[no-untyped-def]
    *, integration: Integration, login_initiation_url: str, redirect_uris: list[str],
    target_link_uris: list[str], jwks_url: str = "", public_key_pem: str = "", actor=None,
    deployment_org_sourced_id: str = "",
) -> ToolRegistration:
    """Register an LTI tool for an ``lti_tool`` integration, with its first deployment.

    URLs are kept exactly as given (redirect URIs are matched by string equality). A pasted
    key must be an RSA public key of 2048 bits or more; its ``kid`` is its thumbprint.
    """
    if integration.kind != IntegrationKind.LTI_TOOL:
        raise RegistrationError(ERROR_NOT_LTI.format(name=integration.name))
    if bool(jwks_url.strip()) == bool(public_key_pem.strip()):
        raise RegistrationError(ERROR_KEY_SOURCE)
    redirects = list(dict.fromkeys(_check_url(u, "A redirect URI") for u in redirect_uris))
    targets = list(dict.fromkeys(_check_url(u, "A target link URI") for u in target_link_uris))
    if not redirects or not targets:
        raise RegistrationError(ERROR_URIS_REQUIRED)
    login_url = _check_url(login_initiation_url, "The login initiation URL")
    kid = ""
    if jwks_url.strip():
        jwks_url = _check_url(jwks_url, "The JWKS URL")
        try:
            check_jwks_url(jwks_url)
        except ToolKeyError as exc:
            raise RegistrationError(str(exc)) from None
    else:
        try:
            _, kid = public_key_from_pem(public_key_pem)
        except ToolKeyError as exc:
            raise RegistrationError(str(exc)) from None
    with transaction.atomic():
        registration = ToolRegistration.objects.create(
            integration=integration, login_initiation_url=login_url, redirect_uris=redirects,
            target_link_uris=targets, jwks_url=jwks_url.strip(),
            public_key_pem=public_key_pem.strip(), public_key_kid=kid,
        )
        deployment = Deployment.objects.create(
            registration=registration, org_sourced_id=deployment_org_sourced_id,
            label=deployment_org_sourced_id or "Default",
        )
        audit.record(
            actor=actor, action="lti.registration_created", target=registration,
            details={"integration": integration.name, "client_id": registration.client_id,
                     "deployment_id": deployment.deployment_id, "redirect_uris": redirects,
                     "target_link_uris": targets, "login_initiation_url": login_url,
                     "key_source": "jwks_url" if jwks_url else "public_key", "kid": kid},
        )
    return registration


def deployment_create(  # type: ignore[no-untyped-def]
    *, registration: ToolRegistration, org_sourced_id: str = "", label: str = "", actor=None,
) -> Deployment:
    """Another deployment of a tool (e.g. one per school), with a fresh generated id."""
    with transaction.atomic():
        deployment = Deployment.objects.create(
            registration=registration, org_sourced_id=org_sourced_id.strip(),
            label=label or org_sourced_id or "Default",
        )
        audit.record(
            actor=actor, action="lti.deployment_created", target=registration,
            details={"client_id": registration.client_id,
                     "deployment_id": deployment.deployment_id,
                     "org_sourced_id": deployment.org_sourced_id},
        )
    return deployment


# --- launch initiation --------------------------------------------------------------------------


def login_hint_for(user: Any, registration: ToolRegistration) -> str:
    """An opaque ``login_hint`` for this user and tool: not the account id, and different
    for every tool, so two vendors cannot join their users through it."""
    return salted_hmac("interchange.lti.login_hint", f"{registration.client_id}:{user.pk}",
                       algorithm="sha256").hexdigest()[:40]


@dataclass(frozen=True)
class LoginInitiation:
    url: str
    params: dict[str, str]


# The resource link a launch opens and its single-use hint, in one statement: the link
# named (only if it is this tool's, in this class), or the tool's default link for the class,
# created on first launch (a concurrent first launch may win the insert: then no row, and the
# caller reads again). No link for Deep Linking. Returns the hint's target link URI.
HINT_ISSUE_SQL = """
WITH named AS (
    SELECT id, url FROM lti_resourcelink
    WHERE %(named)s AND id = %(link)s AND registration_id = %(registration)s
      AND class_sourced_id = %(class)s
), found AS (
    SELECT id, url FROM lti_resourcelink
    WHERE %(default)s AND registration_id = %(registration)s AND class_sourced_id = %(class)s
      AND origin = 'default'
), added AS (
    INSERT INTO lti_resourcelink (id, registration_id, deployment_id, class_sourced_id, origin,
                                  title, text, url, custom, created_by_id, created_at)
    SELECT %(new_link)s, %(registration)s, %(deployment)s, %(class)s, 'default', %(title)s, '',
           '', '{}'::jsonb, %(user)s, now()
    WHERE %(default)s AND NOT EXISTS (SELECT 1 FROM found)
    ON CONFLICT (registration_id, class_sourced_id) WHERE origin = 'default' DO NOTHING
    RETURNING id, url
), link AS (
    SELECT id, url FROM named UNION ALL SELECT id, url FROM found
    UNION ALL SELECT id, url FROM added
    UNION ALL SELECT NULL, NULL WHERE NOT %(named)s AND NOT %(default)s
    LIMIT 1
)
INSERT INTO lti_launchhint (hint_hash, user_id, registration_id, deployment_id,
                            class_sourced_id, message_type, resource_link_id, target_link_uri,
                            created_at, expires_at)
SELECT %(hash)s, %(user)s, %(registration)s, %(deployment)s, %(class)s, %(message_type)s,
       link.id, COALESCE(NULLIF(link.url, ''), %(target)s), now(), %(expires)s
FROM link
RETURNING target_link_uri
"""


def launch_initiate(
    *, user: Any, registration: ToolRegistration, class_sourced_id: str,
    message_type: str = MessageType.RESOURCE_LINK, resource_link_id: str | None = None,
) -> LoginInitiation | None:
    """Start a launch: a single-use message hint bound to this user, tool, deployment, class
    and message, and the login initiation parameters for the tool. None: refused."""
    ctx = launch_context(user=user, registration=registration,
                         class_sourced_id=class_sourced_id, message_type=message_type)
    if ctx is None:
        return None
    link_id = None
    if message_type == MessageType.RESOURCE_LINK and resource_link_id:
        try:
            link_id = uuid.UUID(str(resource_link_id))
        except ValueError:
            return None
    resource_link = message_type == MessageType.RESOURCE_LINK
    token = secrets.token_urlsafe(32)
    params = {
        "named": resource_link and link_id is not None, "link": link_id,
        "default": resource_link and link_id is None, "new_link": uuid.uuid4(),
        "registration": registration.pk, "deployment": ctx.deployment.pk,
        "class": class_sourced_id, "title": registration.integration.name, "user": user.pk,
        "hash": _hash(token), "message_type": message_type,
        "target": registration.default_target_link_uri,
        "expires": timezone.now() + dt.timedelta(seconds=HINT_SECONDS),
    }
    with connection.cursor() as cursor:
        cursor.execute(HINT_ISSUE_SQL, params)
        row = cursor.fetchone()
        if row is None and params["default"]:  # a concurrent first launch made the link
            cursor.execute(HINT_ISSUE_SQL, params)
            row = cursor.fetchone()
    if row is None:  # a named link that is not this tool's in this class
        return None
    return LoginInitiation(
        url=registration.login_initiation_url,
        params={
            "iss": claims_.issuer(),
            "login_hint": login_hint_for(user, registration),
            "target_link_uri": row[0],
            "lti_message_hint": token,
            "lti_deployment_id": ctx.deployment.deployment_id,
            "client_id": registration.client_id,
        },
    )


# --- /lti/auth ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthOutcome:
    """What ``/lti/auth`` answers: a plain page (``status`` and ``message``), or a form
    posted to ``redirect_uri`` carrying ``fields`` (an id_token or an OIDC error)."""

    status: int
    message: str = ""
    redirect_uri: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    integration_id: int | None = None
    client_id: str = ""


# Spend a hint: of two concurrent requests with it, one wins.
_SPEND_HINT = """
WITH spent AS (
    UPDATE lti_launchhint SET used_at = %s
    WHERE hint_hash = %s AND used_at IS NULL AND expires_at > %s AND user_id = %s
      AND registration_id = %s
    RETURNING id, class_sourced_id, message_type, deployment_id, resource_link_id,
              target_link_uri
)
SELECT spent.id, spent.class_sourced_id, spent.message_type, spent.deployment_id,
       spent.target_link_uri, l.id, l.title, l.text, l.url, l.custom, l.class_sourced_id,
       l.origin, l.deployment_id"""
_WITH_LINK = "\nFROM spent LEFT JOIN lti_resourcelink l ON l.id = spent.resource_link_id\n"

CONSUME_HINT_SQL = _SPEND_HINT + _WITH_LINK


def _hint_and_link(row: Any, *, user: Any, registration: ToolRegistration,
                   now: dt.datetime) -> LaunchHint:
    """The spent hint and its resource link from the first 13 columns of a consume row."""
    hint = LaunchHint(id=row[0], class_sourced_id=row[1], message_type=row[2],
                      deployment_id=row[3], target_link_uri=row[4], user=user,
                      registration=registration, used_at=now)
    if row[5] is not None:
        hint.resource_link = ResourceLink(
            id=row[5], title=row[6], text=row[7], url=row[8],
            # raw cursors hand jsonb back as text
            custom=(json.loads(row[9]) if isinstance(row[9], str) else row[9]) or {},
            class_sourced_id=row[10], origin=row[11], deployment_id=row[12],
            registration=registration,
        )
    return hint


def _consume_hint(token: str, *, user: Any, registration: ToolRegistration) -> LaunchHint | None:
    """Spend the hint, atomically: of two concurrent requests with it, one wins. One
    statement returns the hint and its resource link."""
    now = timezone.now()
    with connection.cursor() as cursor:
        prepared.execute(cursor, prepared.statement(CONSUME_HINT_SQL),
                         [now, _hash(token), now, user.pk, registration.pk])
        row = cursor.fetchone()
    if row is None:
        return None
    return _hint_and_link(row, user=user, registration=registration, now=now)


# The whole person side of ``/lti/auth`` in one statement: spend the hint (as
# CONSUME_HINT_SQL), read its resource link, the launch as the release shows it for the
# hint's class (``selectors.launch_statement``), and the active LTI signing key.
CONSUME_AND_LAUNCH_SQL = (
    _SPEND_HINT  # noqa: S608 - constant fragments, nothing from a request
    + ", k.kid, k.master_key_id, k.wrapped_private_key, launch.*"
    + _WITH_LINK
    + """LEFT JOIN LATERAL (
    SELECT kid, master_key_id, wrapped_private_key FROM keys_signingkey
    WHERE purpose = %s AND state = %s
) k ON true
CROSS JOIN LATERAL ({launch}) launch
"""
)


@dataclass(frozen=True)
class _SpentLaunch:
    hint: LaunchHint
    ctx: LaunchContext | None
    key: SigningKey | None  # the active LTI key (None: none yet; sign_jwt bootstraps)


def _consume_and_launch(token: str, *, user: Any, registration: ToolRegistration,
                        release: Any) -> _SpentLaunch | None:
    """Spend the hint and read its launch in one statement (None: the hint is invalid)."""
    now = timezone.now()
    launch_sql, launch_params = launch_statement(
        release, user=user, registration=registration, class_sql="spent.class_sourced_id")
    params = [now, _hash(token), now, user.pk, registration.pk, SigningKey.Purpose.LTI,
              SigningKey.State.ACTIVE, *launch_params]
    with connection.cursor() as cursor:
        statement = prepared.statement(CONSUME_AND_LAUNCH_SQL.format(launch=launch_sql))
        prepared.execute(cursor, statement, params)
        row = cursor.fetchone()
    if row is None:
        return None
    hint = _hint_and_link(row, user=user, registration=registration, now=now)
    key = None
    if row[13] is not None:
        key = SigningKey(kid=row[13], master_key_id=row[14], wrapped_private_key=row[15],
                         purpose=SigningKey.Purpose.LTI, state=SigningKey.State.ACTIVE)
    ctx = launch_context_from(row[16:], registration=registration, release=release,
                              message_type=hint.message_type)
    return _SpentLaunch(hint=hint, ctx=ctx, key=key)


def _sign(payload: dict[str, Any], key: SigningKey | None) -> str:
    """The id_token, signed with the active LTI key read in the launch's statement (its
    parsed private half is cached per process, per kid); ``sign_jwt`` when there is none
    yet, which creates it."""
    if key is None:
        return sign_jwt(purpose=SigningKey.Purpose.LTI, payload=payload, headers={"typ": "JWT"})
    return jwt.encode(payload, load_private_key(key), algorithm=JWT_ALGORITHM,
                      headers={"typ": "JWT", "kid": key.kid, "alg": JWT_ALGORITHM})


def _oidc_error(registration: ToolRegistration, redirect_uri: str, key: str,
                state: str) -> AuthOutcome:
    error, description = OIDC_ERRORS[key]
    fields = {"error": error, "error_description": description}
    if state:
        fields["state"] = state
    return AuthOutcome(status=200, redirect_uri=redirect_uri, fields=fields,
                       integration_id=registration.integration_id,
                       client_id=registration.client_id)


def auth_respond(*, params: dict[str, str], user: Any) -> AuthOutcome:
    """Answer an OIDC authentication request (the tool's redirect to ``/lti/auth``)."""
    started = time.monotonic()
    client_id = params.get("client_id", "")
    registration = registration_by_client_id(client_id)
    if registration is None:
        return AuthOutcome(status=400, message=ERROR_UNKNOWN_CLIENT)
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in registration.redirect_uris:
        return AuthOutcome(status=400, message=ERROR_REDIRECT_URI,
                           integration_id=registration.integration_id, client_id=client_id)
    state = params.get("state", "")
    checks = (
        ("scope", params.get("scope") == "openid"),
        ("response_type", params.get("response_type") == "id_token"),
        ("response_mode", params.get("response_mode") == "form_post"),
        ("prompt", params.get("prompt") == "none"),
        ("nonce", bool(params.get("nonce"))),
    )
    for key, ok in checks:
        if not ok:
            return _oidc_error(registration, redirect_uri, key, state)
    if not user.is_authenticated or not constant_time_compare(
        params.get("login_hint", ""), login_hint_for(user, registration)
    ):
        return _oidc_error(registration, redirect_uri, "login", state)
    now = timezone.now()
    release = launch_release(user, registration, now)
    message_hint = params.get("lti_message_hint", "")
    if release is None:  # no launch of this tool can happen now: spend the hint, refuse
        hint = _consume_hint(message_hint, user=user, registration=registration)
        spent = _SpentLaunch(hint=hint, ctx=None, key=None) if hint is not None else None
    else:
        spent = _consume_and_launch(message_hint, user=user, registration=registration,
                                    release=release)
    if spent is None:
        return _oidc_error(registration, redirect_uri, "hint", state)
    hint, ctx = spent.hint, spent.ctx
    if ctx is None or ctx.deployment.pk != hint.deployment_id:
        _record_access(registration, status=403, started=started)
        return AuthOutcome(status=403, message=REFUSED,
                           integration_id=registration.integration_id, client_id=client_id)
    dl_data = None
    if hint.message_type == MessageType.DEEP_LINKING:
        dl_data = secrets.token_urlsafe(32)
        DeepLinkingRequest.objects.create(
            data_hash=_hash(dl_data), user=user, registration=registration,
            deployment=ctx.deployment, class_sourced_id=hint.class_sourced_id,
            expires_at=now + dt.timedelta(seconds=DEEP_LINKING_SECONDS),
        )
    payload = claims_.id_token_claims(ctx, hint=hint, nonce=params["nonce"], now=now,
                                      link=hint.resource_link, deep_linking_data=dl_data)
    payload.update(_service_claims(ctx, link=hint.resource_link))
    id_token = _sign(payload, spent.key)
    channel = (Channel.LTI_DEEP_LINKING if hint.message_type == MessageType.DEEP_LINKING
               else Channel.LTI_LAUNCH)
    disclosures_record(
        vendor_id=registration.integration.vendor_id, integration_id=registration.integration_id,
        channel=channel,
        field_classes=claims_.disclosed_field_classes(
            payload, column_classes=ctx.release.column_classes),
        user_sourced_ids=[ctx.person["sourced_id"]],
    )
    _record_access(registration, status=200, started=started, records=1, channel=channel)
    fields = {"id_token": id_token}
    if state:
        fields["state"] = state
    return AuthOutcome(status=200, redirect_uri=redirect_uri, fields=fields,
                       integration_id=registration.integration_id, client_id=client_id)


CONTEXT_ENSURE_SQL = """
WITH added AS (
    INSERT INTO lti_lticontext (id, registration_id, deployment_id, class_sourced_id, created_at)
    VALUES (%s, %s, %s, %s, now())
    ON CONFLICT (deployment_id, class_sourced_id) DO NOTHING
    RETURNING id
), context AS (
    SELECT id FROM added
    UNION ALL
    SELECT id FROM lti_lticontext WHERE deployment_id = %s AND class_sourced_id = %s
    LIMIT 1
)
SELECT context.id,
       (SELECT li.id FROM lti_agslineitem li WHERE li.resource_link_id = %s
        ORDER BY li.created_at, li.id LIMIT 1)
FROM context
"""


def lti_context_ensure(*, registration: ToolRegistration, deployment: Deployment,
                       class_sourced_id: str, link: ResourceLink | None = None) -> Any:
    """The id of the class's context for this deployment, created on first use, in one
    statement (a second read only if a concurrent launch created it a moment before)."""
    return _context_and_line_item(registration=registration, deployment=deployment,
                                  class_sourced_id=class_sourced_id, link=link)[0]


def _context_and_line_item(*, registration: ToolRegistration, deployment: Deployment,
                           class_sourced_id: str, link: ResourceLink | None) -> tuple[Any, Any]:
    """(context id, the line item the tool created for ``link``, if any)."""
    params = [uuid.uuid4(), registration.pk, deployment.pk, class_sourced_id, deployment.pk,
              class_sourced_id, link.pk if link is not None else None]
    with connection.cursor() as cursor:
        cursor.execute(CONTEXT_ENSURE_SQL, params)
        row = cursor.fetchone()
    if row is not None:
        return row[0], row[1]
    context_id = LtiContext.objects.values_list("id", flat=True).get(
        deployment=deployment, class_sourced_id=class_sourced_id)
    return context_id, None


def _service_claims(ctx: LaunchContext, *, link: ResourceLink | None) -> dict[str, Any]:
    """NRPS and AGS claims, only for the services and scopes the tool is approved for. The
    AGS ``lineitem`` is the line item the tool created for the launched resource link."""
    from apps.lti.tokens import approved_service_scopes

    nrps, ags_scopes = approved_service_scopes(ctx.release)
    if not nrps and not ags_scopes:
        return {}
    context_id, line_item_id = _context_and_line_item(
        registration=ctx.registration, deployment=ctx.deployment,
        class_sourced_id=ctx.klass["sourced_id"], link=link if ags_scopes else None)
    return claims_.service_claims(context_id=context_id, nrps=nrps, ags_scopes=ags_scopes,
                                  lineitem_id=line_item_id)


def _record_access(registration: ToolRegistration, *, status: int, started: float,
                   records: int = 0, channel: str = Channel.LTI_LAUNCH,
                   endpoint: str = "/lti/auth") -> None:
    access_record(
        integration_id=registration.integration_id, channel=channel, endpoint=endpoint,
        status_code=status, records=records,
        duration_ms=int((time.monotonic() - started) * 1000), client_id=registration.client_id,
    )


def launch_start_refused(*, registration: ToolRegistration | None, started: float) -> None:
    """A launch refused at the launch page (the person, class or tool not allowed now): an
    access record for the tool, as every refused vendor request leaves, so a pupil who keeps
    trying a tool they may not use shows up in monitoring. An unknown client id names no
    tool, so there is nothing to record against."""
    if registration is not None:
        _record_access(registration, status=403, started=started, endpoint="/launch/start")


# --- Deep Linking responses ---------------------------------------------------------------------


@dataclass(frozen=True)
class DeepLinkingOutcome:
    ok: bool
    message: str
    links: tuple[ResourceLink, ...] = ()
    class_sourced_id: str = ""
    tool_message: str = ""


def _same_origin_as_tool(url: str, registration: ToolRegistration) -> bool:
    parts = urlsplit(url)
    known = {
        (urlsplit(u).scheme, urlsplit(u).netloc)
        for u in [*registration.target_link_uris, registration.login_initiation_url]
    }
    return (parts.scheme, parts.netloc) in known and not parts.fragment


def _nonce_fresh(client_id: str, nonce: str, exp: int) -> bool:
    """Remember the nonce until the token could no longer verify; False on a replay."""
    ttl = max(int(exp - time.time()), 0) + JWT_LEEWAY_SECONDS + 1
    key = "lti:dl-nonce:" + hashlib.sha256(f"{client_id}\x00{nonce}".encode()).hexdigest()
    return cache.add(key, 1, ttl)


def _consume_dl_request(data: str, *, registration: ToolRegistration,
                        deployment_id: str) -> DeepLinkingRequest | None:
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE lti_deeplinkingrequest r SET used_at = %s FROM lti_deployment d "
            "WHERE r.data_hash = %s AND r.used_at IS NULL AND r.expires_at > %s "
            "AND r.registration_id = %s AND d.id = r.deployment_id AND d.deployment_id = %s "
            "RETURNING r.id",
            [now, _hash(data), now, registration.pk, deployment_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return DeepLinkingRequest.objects.select_related("user", "deployment").get(pk=row[0])


def deep_linking_response_accept(*, token: str, session_user: Any) -> DeepLinkingOutcome:
    """Verify a tool's Deep Linking response and create the resource links it returns.

    Checks: RS256 with a ``kid`` naming the tool's key; ``iss`` = the client id; ``aud`` =
    our issuer; ``exp``/``iat``; the message type, version and deployment; a ``nonce`` never
    seen before (kept in the shared cache until the token expires); ``data`` equal to an
    unanswered request of this tool and deployment (single use). When the browser brought a
    session, its user must be the one who asked. The person's launch is re-checked too.
    """
    fail = DeepLinkingOutcome(ok=False, message=ERROR_DL_INVALID)
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return fail
    if header.get("alg") != "RS256" or not isinstance(unverified, dict):
        return fail
    client_id = unverified.get("iss")
    registration = registration_by_client_id(client_id) if isinstance(client_id, str) else None
    if registration is None:
        return fail
    try:
        key = tool_public_key(registration, header.get("kid"))
        payload = jwt.decode(
            token, key, algorithms=["RS256"], audience=claims_.issuer(), issuer=client_id,
            leeway=JWT_LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "iss", "aud", "nonce"]},
        )
    except (ToolKeyError, jwt.PyJWTError):
        return fail
    if payload["iat"] > time.time() + JWT_LEEWAY_SECONDS:
        return fail
    if payload.get(claims_.LTI + "message_type") != "LtiDeepLinkingResponse" or payload.get(
        claims_.LTI + "version"
    ) != claims_.LTI_VERSION:
        return fail
    deployment_id = payload.get(claims_.LTI + "deployment_id")
    data = payload.get(claims_.DL + "data")
    if not isinstance(deployment_id, str) or not isinstance(data, str) or not data:
        return fail
    if not isinstance(payload["nonce"], str) or not _nonce_fresh(
        client_id, payload["nonce"], int(payload["exp"])
    ):
        return fail
    request = _consume_dl_request(data, registration=registration, deployment_id=deployment_id)
    if request is None:
        return DeepLinkingOutcome(ok=False, message=ERROR_DL_EXPIRED)
    if session_user is not None and session_user.is_authenticated and (
        session_user.pk != request.user_id
    ):
        return fail
    ctx = launch_context(user=request.user, registration=registration,
                         class_sourced_id=request.class_sourced_id,
                         message_type=MessageType.DEEP_LINKING)
    if ctx is None:
        return DeepLinkingOutcome(ok=False, message=REFUSED)
    items = payload.get(claims_.DL + "content_items") or []
    if not isinstance(items, list) or len(items) > MAX_CONTENT_ITEMS:
        return fail
    links = []
    line_items = 0
    with transaction.atomic():
        for item in items:
            if not isinstance(item, dict) or item.get("type") != "ltiResourceLink":
                continue
            url = item.get("url") or ""
            if url and not (isinstance(url, str) and _same_origin_as_tool(url, registration)):
                continue
            custom = item.get("custom") if isinstance(item.get("custom"), dict) else {}
            links.append(ResourceLink.objects.create(
                registration=registration, deployment=request.deployment,
                class_sourced_id=request.class_sourced_id, origin=ResourceLinkOrigin.DEEP_LINK,
                title=str(item.get("title") or "")[:255], text=str(item.get("text") or ""),
                url=url, custom={str(k): str(v) for k, v in custom.items()},
                line_item=item.get("lineItem") if isinstance(item.get("lineItem"), dict)
                else None,
                created_by=request.user,
            ))
            if links[-1].line_item is not None:
                line_items += _deep_link_line_item(ctx, links[-1])
        audit.record(
            actor=request.user, action="lti.deep_links_created", target=registration,
            details={"client_id": registration.client_id,
                     "class_sourced_id": request.class_sourced_id,
                     "links": [str(link.pk) for link in links],
                     "line_items": line_items, "offered": len(items)},
        )
    tool_message = str(payload.get(claims_.DL + "msg") or "")[:500]
    return DeepLinkingOutcome(ok=True, message="", links=tuple(links),
                              class_sourced_id=request.class_sourced_id,
                              tool_message=tool_message)


def _deep_link_line_item(ctx: LaunchContext, link: ResourceLink) -> int:
    """Create the line item a Deep Linking item asked for, bound to its new link, when the
    tool is approved to manage line items; a malformed one is skipped (the link stays).
    Returns 1 when one was created."""
    from apps.lti import ags
    from apps.lti.tokens import AGS_LINEITEM, approved_service_scopes

    _, ags_scopes = approved_service_scopes(ctx.release)
    klass = ags.released_class(ctx.release, link.class_sourced_id)
    if AGS_LINEITEM not in ags_scopes or klass is None:
        return 0
    context_id = lti_context_ensure(registration=ctx.registration,
                                    deployment=link.deployment,
                                    class_sourced_id=link.class_sourced_id)
    context = LtiContext.objects.get(pk=context_id)
    wanted = {k: v for k, v in (link.line_item or {}).items() if k != "resourceLinkId"}
    try:
        data = ags.line_item_input({**wanted, "resourceLinkId": str(link.pk)}, context=context)
        ags.line_item_create(context=context, release=ctx.release, klass=klass, data=data)
    except ags.AgsError:
        return 0
    return 1


def launch_hints_prune(*, now: dt.datetime | None = None) -> int:
    """Delete hints and Deep Linking requests past their expiry (kept a day for forensics)."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=1)
    hints, _ = LaunchHint.objects.filter(expires_at__lt=cutoff).delete()
    requests, _ = DeepLinkingRequest.objects.filter(
        Q(expires_at__lt=cutoff)
    ).delete()
    return hints + requests
