"""Who is calling: the bearer token, checked against the database on every request, and the
client's rate limit, counted in Redis.

A token is opaque (the toolkit stores only its SHA-256 checksum); a lookup by checksum
joins the client and its integration in one query. Whether the integration may still be
served (active, vendor active, approvals live) is then the release's question, asked on
the same request, so a suspension or a revocation acts on the very next call.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from apps.governance import release_cache
from apps.oneroster_api.errors import (
    MSG_SERVER_BUSY,
    MSG_UNAUTHORISED,
    SERVER_BUSY,
    UNAUTHORISED,
    ApiError,
)
from portal.db import prepared

# The release generations come with the token: the release check needs them next, and
# every request would otherwise spend a round trip on them (release_cache).
TOKEN_SQL = f"""
SELECT c.id, c.integration_id, c.rate_limit_per_minute, a.client_id, t.scope,
       {release_cache.GENERATIONS_COLUMN_SQL}
FROM oauth2_provider_accesstoken t
JOIN oauth2_provider_application a ON a.id = t.application_id
JOIN oneroster_api_onerosterclient c ON c.application_id = a.id
WHERE t.token_checksum = %s AND t.expires > now() AND c.revoked_at IS NULL
"""  # noqa: S105, S608 - a query of constant fragments, not a password

TOKEN_STATEMENT = prepared.Prepared(TOKEN_SQL)

# Who a refused token belonged to (expired, or its client revoked): for the access record
# only, never to serve anything.
TOKEN_OWNER_SQL = """
SELECT c.integration_id, a.client_id
FROM oauth2_provider_accesstoken t
JOIN oauth2_provider_application a ON a.id = t.application_id
JOIN oneroster_api_onerosterclient c ON c.application_id = a.id
WHERE t.token_checksum = %s
"""  # noqa: S105 - a query, not a password

DEFAULT_RATE_LIMIT = 1200


class Refused(ApiError):
    """A 401 for a token we issued that no longer works, naming whose it was, so the access
    record of the refusal is the integration's (an offboarded vendor still calling shows)."""

    def __init__(self, *args, integration_id: int, client_id: str, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.integration_id = integration_id
        self.client_id = client_id


@dataclass(frozen=True)
class Caller:
    client_pk: int
    integration_id: int
    rate_limit: int
    client_id: str
    scopes: frozenset[str]
    # the release generations, read with the token (release_for(generations=...))
    generations: release_cache.Generations | None = None


def bearer_token(request) -> str | None:  # type: ignore[no-untyped-def]
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512:
        return None
    return token


def authenticate(request) -> Caller:  # type: ignore[no-untyped-def]
    """The caller of ``request``; 401 ``unauthorisedrequest`` without a valid token."""
    token = bearer_token(request)
    if token is None:
        raise ApiError(UNAUTHORISED, MSG_UNAUTHORISED, headers={"WWW-Authenticate": "Bearer"})
    checksum = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
    with connection.cursor() as cursor:
        prepared.execute(cursor, TOKEN_STATEMENT, [checksum])
        row = cursor.fetchone()
    if row is None:
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        with connection.cursor() as cursor:
            cursor.execute(TOKEN_OWNER_SQL, [checksum])
            owner = cursor.fetchone()
        if owner is not None:
            raise Refused(UNAUTHORISED, MSG_UNAUTHORISED, headers=headers,
                          integration_id=owner[0], client_id=owner[1])
        raise ApiError(UNAUTHORISED, MSG_UNAUTHORISED, headers=headers)
    client_pk, integration_id, limit, client_id, scope, generations = row
    return Caller(
        client_pk=client_pk, integration_id=integration_id,
        rate_limit=limit or getattr(
            settings, "INTERCHANGE_ONEROSTER_RATE_LIMIT_PER_MINUTE", DEFAULT_RATE_LIMIT
        ),
        client_id=client_id, scopes=frozenset((scope or "").split()),
        generations=release_cache.generations_of(generations),
    )


def recorded_as(caller: Caller | None, refusal: Exception | None) -> tuple[int | None, str]:
    """(integration id, client id) an access record names: the caller's, or, for a refused
    token we issued, whose it was."""
    if caller is not None:
        return caller.integration_id, caller.client_id
    if isinstance(refusal, Refused):
        return refusal.integration_id, refusal.client_id
    return None, ""


def _redis():  # type: ignore[no-untyped-def]
    """The raw Redis client behind the cache, or None with a local-memory cache.

    Kept on the cache backend that made it: building a client costs more than the two
    commands every request sends through it, and its pool is the backend's own."""
    backend = getattr(cache, "_cache", None)
    get_client = getattr(backend, "get_client", None)
    if get_client is None:
        return None
    client = backend.__dict__.get("_interchange_rate_limit_client")
    if client is None:
        client = backend.__dict__["_interchange_rate_limit_client"] = get_client(None,
                                                                                 write=True)
    return client


def rate_limit_check(caller: Caller, *, now: float | None = None) -> None:
    """Fixed one-minute windows per client; 429 ``server_busy`` with ``Retry-After`` once
    the client has used its allowance for the current minute."""
    now = time.time() if now is None else now
    window = int(now // 60)
    key = f"oneroster:rl:{caller.client_pk}:{window}"
    client = _redis()
    if client is not None:
        pipe = client.pipeline()
        pipe.incr(key)
        pipe.expire(key, 61)
        count = pipe.execute()[0]
    else:
        cache.add(key, 0, 61)
        count = cache.incr(key)
    if count > caller.rate_limit:
        retry = max(1, 60 - int(now % 60))
        raise ApiError(
            SERVER_BUSY, MSG_SERVER_BUSY.format(seconds=retry), headers={"Retry-After": str(retry)}
        )
