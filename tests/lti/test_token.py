"""The token endpoint from the outside: a tool posts a JWT client assertion to /lti/token.

Each refusal is a case a real platform has shipped without: an assertion for another
audience, ``iss`` that is not ``sub``, an expired or post-dated one, ``alg`` none or HS256, a
key that is not the tool's, a replayed ``jti``, a scope nobody approved.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import time
import uuid

import jwt
import pytest

from apps.lti import tokens
from apps.lti.models import ServiceToken, TokenOutcome, TokenRequest
from apps.vendors.models import IntegrationStatus
from tests.lti.conftest import register_tool
from tests.lti.tool import rsa_key_pair

pytestmark = pytest.mark.django_db

NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
RESULTS = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
SERVICES = ("lti.launch", "lti.nrps", "lti.ags")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def tool(school, settings):  # type: ignore[no-untyped-def]
    settings.INTERCHANGE_PUBLIC_URL = "https://platform.example"
    return register_tool(services=SERVICES, scopes=(NRPS, SCORE, LINEITEM),
                         field_classes=("identifier",))


def kid_of(registered) -> str:  # type: ignore[no-untyped-def]
    return registered.registration.public_key_kid


def assertion(registered, *, private_pem: str | None = None, algorithm: str = "RS256",  # type: ignore[no-untyped-def]
              kid: str | None = "default", drop: tuple[str, ...] = (), **claims) -> str:
    now = int(time.time())
    payload = {"iss": registered.client_id, "sub": registered.client_id,
               "aud": "https://platform.example/lti/token", "iat": now - 5, "exp": now + 60,
               "jti": str(uuid.uuid4())}
    payload.update(claims)
    for name in drop:
        payload.pop(name)
    headers = {}
    if kid == "default":
        headers["kid"] = kid_of(registered)
    elif kid is not None:
        headers["kid"] = kid
    return jwt.encode(payload, private_pem or registered.private_pem, algorithm=algorithm,
                      headers=headers)


def ask(client, token: str, scope: str = NRPS, **extra):  # type: ignore[no-untyped-def]
    data = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": token, "scope": scope, **extra}
    return client.post("/lti/token", data)


def refused(response, error: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == (401 if error == "invalid_client" else 400), response.content
    assert response.json() == {"error": error, "error_description": reason}
    assert response["Cache-Control"] == "no-store"


# --- granted ------------------------------------------------------------------------------------


def test_an_approved_tool_gets_a_short_lived_opaque_token_for_approved_scopes(client, tool):
    response = ask(client, assertion(tool), scope=f"{SCORE} {NRPS}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert set(body["scope"].split()) == {SCORE, NRPS}
    assert response["Cache-Control"] == "no-store"
    # opaque, and only its hash is kept
    raw = body["access_token"]
    assert raw.count(".") == 0 and len(raw) >= 40
    stored = ServiceToken.objects.get()
    assert stored.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(list(ServiceToken.objects.values()))
    # bound to the tool, its (only) deployment and the scopes
    assert stored.registration == tool.registration
    assert stored.deployment.deployment_id == tool.deployment_id
    assert set(stored.scopes) == {SCORE, NRPS}
    assert (stored.expires_at - stored.issued_at).total_seconds() == 900
    record = TokenRequest.objects.get()
    assert record.outcome == TokenOutcome.GRANTED
    assert record.token == stored and record.registration == tool.registration


def test_a_tool_with_one_pasted_key_may_omit_the_kid(client, tool):
    assert ask(client, assertion(tool, kid=None)).status_code == 200


def test_the_configured_audience_is_accepted_too(client, tool, settings):
    settings.INTERCHANGE_LTI_TOKEN_AUDIENCE = "https://platform.example/"
    response = ask(client, assertion(tool, aud="https://platform.example/"))
    assert response.status_code == 200, response.content


def test_a_named_deployment_binds_the_token_to_it(client, tool):
    response = ask(client, assertion(tool, **{
        "https://purl.imsglobal.org/spec/lti/claim/deployment_id": tool.deployment_id}))
    assert response.status_code == 200
    assert ServiceToken.objects.get().deployment.deployment_id == tool.deployment_id


# --- refused: the assertion ---------------------------------------------------------------------


def test_an_assertion_for_another_audience_is_refused(client, tool):
    refused(ask(client, assertion(tool, aud="https://elsewhere.example/token")),
            "invalid_client", tokens.REASON_AUDIENCE)


def test_iss_different_from_sub_is_refused(client, tool):
    refused(ask(client, assertion(tool, sub="someone-else")), "invalid_client",
            tokens.REASON_ISS_SUB)


def test_an_unknown_client_is_refused(client, tool):
    refused(ask(client, assertion(tool, iss="nobody", sub="nobody")), "invalid_client",
            tokens.REASON_UNKNOWN_CLIENT)


def test_an_expired_assertion_is_refused(client, tool):
    now = int(time.time())
    refused(ask(client, assertion(tool, iat=now - 300, exp=now - 60)), "invalid_client",
            tokens.REASON_EXPIRED)


def test_an_assertion_issued_in_the_future_is_refused(client, tool):
    now = int(time.time())
    refused(ask(client, assertion(tool, iat=now + 120, exp=now + 180)), "invalid_client",
            tokens.REASON_IAT_FUTURE)


def test_a_long_lived_assertion_is_refused(client, tool):
    now = int(time.time())
    refused(ask(client, assertion(tool, exp=now + 3600)), "invalid_client",
            tokens.REASON_LIFETIME)


@pytest.mark.parametrize("claim", ["jti", "exp", "iat", "aud"])
def test_an_assertion_missing_a_required_claim_is_refused(client, tool, claim):
    response = ask(client, assertion(tool, drop=(claim,)))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_alg_none_is_refused(client, tool):
    now = int(time.time())
    unsigned = jwt.encode({"iss": tool.client_id, "sub": tool.client_id,
                           "aud": "https://platform.example/lti/token", "iat": now,
                           "exp": now + 60, "jti": "x"}, None, algorithm="none")
    refused(ask(client, unsigned), "invalid_client", tokens.REASON_ALG)


def test_hs256_is_refused_even_keyed_with_the_public_key(client, tool):
    # the classic confusion: "sign" with HMAC using the tool's public key as the secret
    token = assertion(tool, private_pem="a-shared-secret-of-some-length-000", algorithm="HS256")
    refused(ask(client, token), "invalid_client", tokens.REASON_ALG)


def test_an_unknown_kid_is_refused(client, tool):
    refused(ask(client, assertion(tool, kid="not-a-kid-of-this-tool")), "invalid_client",
            tokens.REASON_KID)


def test_an_assertion_signed_by_another_key_is_refused(client, tool):
    other_private, _ = rsa_key_pair()
    refused(ask(client, assertion(tool, private_pem=other_private)), "invalid_client",
            tokens.REASON_SIGNATURE)


def test_another_tools_key_cannot_speak_for_this_tool(client, tool):
    other = register_tool(services=SERVICES, scopes=(NRPS,), field_classes=("identifier",))
    token = assertion(tool, private_pem=other.private_pem, kid=kid_of(other))
    refused(ask(client, token), "invalid_client", tokens.REASON_KID)


def test_a_replayed_jti_is_refused(client, tool):
    token = assertion(tool)
    assert ask(client, token).status_code == 200
    refused(ask(client, token), "invalid_client", tokens.REASON_REPLAY)
    # a fresh assertion with the same jti is a replay too
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    refused(ask(client, assertion(tool, jti=jti)), "invalid_client", tokens.REASON_REPLAY)
    assert ServiceToken.objects.count() == 1


def test_a_jti_is_spent_atomically_in_redis_with_an_expiry(redis_url, tool):
    import redis

    # given 16 concurrent requests carrying the same assertion's jti
    exp = int(time.time()) + 60
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        wins = list(pool.map(lambda _: tokens.jti_first_use(tool.client_id, "same-jti", exp=exp),
                             range(16)))
    # then exactly one wins
    assert wins.count(True) == 1
    # and the key lives in Redis, expiring after the assertion could no longer verify
    server = redis.Redis.from_url(redis_url)
    keys = server.keys("*lti:jti:*")
    assert len(keys) == 1
    assert 60 <= server.ttl(keys[0]) <= 60 + tokens.LEEWAY_SECONDS + 1


# --- refused: the request -----------------------------------------------------------------------


def test_an_unapproved_scope_is_refused_not_narrowed(client, school, settings):
    settings.INTERCHANGE_PUBLIC_URL = "https://platform.example"
    tool = register_tool(services=SERVICES, scopes=(NRPS,), field_classes=("identifier",))
    refused(ask(client, assertion(tool), scope=f"{NRPS} {SCORE}"), "invalid_scope",
            tokens.REASON_SCOPE.format(scopes=SCORE))
    assert not ServiceToken.objects.exists()


def test_a_scope_approved_without_its_service_is_refused(client, school, settings):
    settings.INTERCHANGE_PUBLIC_URL = "https://platform.example"
    tool = register_tool(services=("lti.launch",), scopes=(NRPS,))
    refused(ask(client, assertion(tool)), "invalid_scope",
            tokens.REASON_SCOPE.format(scopes=NRPS))


def test_a_request_without_scope_is_refused(client, tool):
    refused(ask(client, assertion(tool), scope=""), "invalid_scope", tokens.REASON_NO_SCOPE)


def test_another_grant_type_is_refused(client, tool):
    refused(ask(client, assertion(tool), grant_type="password"), "unsupported_grant_type",
            tokens.REASON_GRANT_TYPE)


def test_another_assertion_type_is_refused(client, tool):
    refused(ask(client, assertion(tool), client_assertion_type="urn:other"), "invalid_client",
            tokens.REASON_ASSERTION_TYPE)


def test_a_suspended_integration_gets_no_token(client, tool):
    tool.integration.status = IntegrationStatus.SUSPENDED
    tool.integration.save()
    refused(ask(client, assertion(tool)), "invalid_client", tokens.REASON_NOT_LIVE)


def test_a_named_deployment_of_another_tool_is_refused(client, tool):
    other = register_tool(services=SERVICES, scopes=(NRPS,), field_classes=("identifier",))
    response = ask(client, assertion(tool, **{
        "https://purl.imsglobal.org/spec/lti/claim/deployment_id": other.deployment_id}))
    refused(response, "invalid_request", tokens.REASON_DEPLOYMENT)


def test_every_refusal_is_recorded_with_its_reason(client, tool):
    ask(client, assertion(tool, aud="https://elsewhere.example/"))
    ask(client, assertion(tool), scope=RESULTS)
    ask(client, "not-a-jwt")

    records = list(TokenRequest.objects.order_by("at", "id").values(
        "outcome", "error", "reason", "client_id", "registration"))
    assert [r["outcome"] for r in records] == [TokenOutcome.REFUSED] * 3
    assert [r["reason"] for r in records] == [
        tokens.REASON_AUDIENCE, tokens.REASON_SCOPE.format(scopes=RESULTS),
        tokens.REASON_MALFORMED]
    assert records[0]["client_id"] == tool.client_id
    assert records[0]["registration"] == tool.registration.pk
    assert records[2]["registration"] is None


def test_only_post_is_accepted(client, tool):
    assert client.get("/lti/token").status_code == 405


def test_staff_read_token_requests_and_their_reasons_in_the_admin(client, tool):
    from django.contrib.auth import get_user_model

    ask(client, assertion(tool, aud="https://elsewhere.example/"))
    ask(client, assertion(tool))
    root = get_user_model().objects.create_superuser("root.breakglass", "r@x.example", "pw")
    client.force_login(root)

    page = client.get("/admin/lti/tokenrequest/")
    assert page.status_code == 200
    assert tokens.REASON_AUDIENCE in page.content.decode()
    record = TokenRequest.objects.get(outcome=TokenOutcome.GRANTED)
    detail = client.get(f"/admin/lti/tokenrequest/{record.pk}/change/")
    assert detail.status_code == 200
    assert client.post(f"/admin/lti/tokenrequest/{record.pk}/delete/").status_code == 403
