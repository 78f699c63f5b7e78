"""Signing keys: life cycle, kid as RFC 7638 thumbprint, JWKS over HTTP, audited changes."""

from __future__ import annotations

import threading
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from jwcrypto import jwk as jwcrypto_jwk

from apps.audit.models import AuditEvent
from apps.keys import services
from apps.keys.jwk import jwk_thumbprint, rsa_public_jwk
from apps.keys.models import SigningKey
from apps.keys.services import SigningKeyError

pytestmark = pytest.mark.django_db

LTI, EVIDENCE = SigningKey.Purpose.LTI, SigningKey.Purpose.EVIDENCE
State = SigningKey.State
LTI_JWKS, EVIDENCE_JWKS = "/lti/jwks", "/keys/evidence/jwks"

# RFC 7638 section 3.1: the example RSA key and its published SHA-256 thumbprint.
RFC7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
        "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
        "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def states(purpose: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for kid, state in SigningKey.objects.filter(purpose=purpose).values_list("kid", "state"):
        result.setdefault(state, []).append(kid)
    return result


def published(client, url: str) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    response = client.get(url)
    assert response.status_code == 200
    return {key["kid"]: key for key in response.json()["keys"]}


def verify(token: str, jwks: dict[str, dict], **options) -> dict:  # type: ignore[no-untyped-def]
    """Verify as a tool would: pick the JWK by the token's kid, accept RS256 only."""
    kid = jwt.get_unverified_header(token)["kid"]
    public = jwt.PyJWK(jwks[kid]).key
    return jwt.decode(token, public, algorithms=["RS256"], options={"verify_aud": False}, **options)


# --- kid -------------------------------------------------------------------------------------


def test_the_thumbprint_matches_the_rfc_7638_example():
    assert jwk_thumbprint(RFC7638_JWK) == RFC7638_THUMBPRINT


def test_a_keys_kid_is_the_rfc_7638_thumbprint_of_its_public_key(master_key):
    key = services.signing_key_active(purpose=LTI)

    public = serialization.load_pem_public_key(key.public_key_pem.encode())
    assert key.kid == jwk_thumbprint(rsa_public_jwk(public))
    # and an independent implementation agrees
    assert key.kid == jwcrypto_jwk.JWK.from_pem(key.public_key_pem.encode()).thumbprint()


# --- life cycle ------------------------------------------------------------------------------


def test_first_use_creates_an_active_and_a_next_key_of_the_purposes_size(master_key):
    active = services.signing_key_active(purpose=LTI)

    assert active.state == State.ACTIVE and active.activated_at is not None
    assert {s: len(k) for s, k in states(LTI).items()} == {State.ACTIVE: 1, State.NEXT: 1}
    assert {k.key_size for k in SigningKey.objects.filter(purpose=LTI)} == {2048}
    assert services.signing_key_active(purpose=LTI) == active  # no second bootstrap


def test_evidence_keys_are_rsa_3072(master_key):
    assert services.signing_key_active(purpose=EVIDENCE).key_size == 3072


def test_rotation_promotes_next_retires_active_and_prepares_a_new_next(master_key):
    first = services.signing_key_active(purpose=LTI)
    upcoming = SigningKey.objects.get(purpose=LTI, state=State.NEXT)

    activated = services.signing_keys_rotate(purpose=LTI)

    first.refresh_from_db()
    assert activated.kid == upcoming.kid
    assert first.state == State.RETIRED and first.retired_at is not None
    after = states(LTI)
    assert after[State.ACTIVE] == [upcoming.kid]
    assert after[State.RETIRED] == [first.kid]
    assert len(after[State.NEXT]) == 1 and after[State.NEXT][0] not in (first.kid, upcoming.kid)


def test_the_private_key_is_stored_only_wrapped_and_matches_the_public_key(master_key):
    key = services.signing_key_active(purpose=LTI)
    private = services.load_private_key(key)

    der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert der not in bytes(key.wrapped_private_key)
    assert rsa_public_jwk(private.public_key())["n"] in str(published_jwk_n(key))


def published_jwk_n(key: SigningKey) -> str:
    return rsa_public_jwk(serialization.load_pem_public_key(key.public_key_pem.encode()))["n"]


def test_an_unknown_purpose_is_refused(master_key):
    with pytest.raises(SigningKeyError) as error:
        services.signing_keys_rotate(purpose="email")
    assert str(error.value).startswith("Unknown signing key purpose 'email'")


def test_creating_a_second_next_key_is_refused(master_key):
    services.signing_key_active(purpose=LTI)
    with pytest.raises(SigningKeyError) as error:
        services.signing_key_create(purpose=LTI)
    assert "already exists" in str(error.value)


def test_every_key_change_is_audited_without_key_material(
    master_key, staff_user_factory, django_capture_on_commit_callbacks
):
    engineer = staff_user_factory(role="engineer")
    # (one capture: the audit flush is registered once per outer transaction)
    with django_capture_on_commit_callbacks(execute=True):
        services.signing_key_active(purpose=LTI)
        active = services.signing_keys_rotate(purpose=LTI, actor=engineer)
        services.signing_key_revoke(key=active, actor=engineer, reason="private key leaked")

    events = list(AuditEvent.objects.filter(action__startswith="keys.").order_by("id"))
    assert [e.action for e in events] == [
        "keys.signing_keys_bootstrapped",
        "keys.signing_keys_rotated",
        "keys.signing_key_revoked",
    ]
    rotated, revoked = events[1], events[2]
    assert rotated.actor_id == engineer.pk and rotated.details["activated"] == active.kid
    assert revoked.details["reason"] == "private key leaked"
    assert revoked.details["previous_state"] == State.ACTIVE
    for event in events:
        assert "PRIVATE" not in str(event.details) and master_key not in str(event.details)


def test_history_is_kept_for_each_change_without_the_wrapped_private_key(master_key):
    key = services.signing_key_active(purpose=LTI)
    services.signing_keys_rotate(purpose=LTI)

    history = list(key.history.order_by("history_date").values_list("state", flat=True))
    assert history == [State.ACTIVE, State.RETIRED]
    historical_fields = {f.name for f in SigningKey.history.model._meta.get_fields()}
    assert "wrapped_private_key" not in historical_fields


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_uses_bootstrap_exactly_one_active_key(master_key):
    barrier = threading.Barrier(4)
    results: list[str] = []
    errors: list[BaseException] = []

    def first_use() -> None:
        try:
            barrier.wait()
            results.append(services.signing_key_active(purpose=LTI).kid)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(set(results)) == 1
    assert {s: len(k) for s, k in states(LTI).items()} == {State.ACTIVE: 1, State.NEXT: 1}


# --- revocation ------------------------------------------------------------------------------


def test_revoking_the_active_key_promotes_next_so_signing_never_stops(
    master_key, staff_user_factory
):
    actor = staff_user_factory(role="governance")
    compromised = services.signing_key_active(purpose=LTI)
    upcoming = SigningKey.objects.get(purpose=LTI, state=State.NEXT)

    services.signing_key_revoke(key=compromised, actor=actor, reason="found in a public repo")

    compromised.refresh_from_db()
    assert compromised.state == State.REVOKED and compromised.revoked_at is not None
    assert services.signing_key_active(purpose=LTI).kid == upcoming.kid
    assert len(states(LTI)[State.NEXT]) == 1


def test_revocation_needs_a_reason_and_happens_once(master_key, staff_user_factory):
    actor = staff_user_factory(role="governance")
    key = services.signing_key_active(purpose=LTI)

    with pytest.raises(SigningKeyError, match=services.REASON_REQUIRED):
        services.signing_key_revoke(key=key, actor=actor, reason="  ")
    services.signing_key_revoke(key=key, actor=actor, reason="leak")
    with pytest.raises(SigningKeyError) as error:
        services.signing_key_revoke(key=key, actor=actor, reason="again")
    assert str(error.value) == services.ALREADY_REVOKED.format(kid=key.kid)


# --- JWTs and the JWKS over HTTP -------------------------------------------------------------


def test_tokens_carry_kid_and_rs256_whatever_the_caller_asks(master_key):
    token = services.sign_jwt(
        purpose=LTI, payload={"sub": "u1"}, headers={"alg": "none", "kid": "evil", "typ": "JWT"}
    )

    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"] == services.signing_key_active(purpose=LTI).kid


def test_the_lti_jwks_publishes_next_active_and_recently_retired_keys(client, master_key, settings):
    settings.INTERCHANGE_LTI_KEY_RETIRED_OVERLAP_HOURS = 72
    first = services.signing_key_active(purpose=LTI)
    services.signing_keys_rotate(purpose=LTI)
    current = states(LTI)

    response = client.get(LTI_JWKS)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "max-age=300" in response["Cache-Control"]
    keys = {key["kid"]: key for key in response.json()["keys"]}
    assert set(keys) == {first.kid, *current[State.ACTIVE], *current[State.NEXT]}
    for key in keys.values():
        assert set(key) == {"kty", "n", "e", "kid", "alg", "use"}
        assert (key["kty"], key["alg"], key["use"], key["e"]) == ("RSA", "RS256", "sig", "AQAB")
        assert jwk_thumbprint(key) == key["kid"]

    # once the overlap has passed, the retired key leaves the set
    SigningKey.objects.filter(kid=first.kid).update(retired_at=timezone.now() - timedelta(hours=73))
    assert first.kid not in published(client, LTI_JWKS)


def test_a_revoked_lti_key_leaves_the_jwks_at_once(client, master_key, staff_user_factory):
    key = services.signing_key_active(purpose=LTI)
    services.signing_key_revoke(key=key, actor=staff_user_factory(role="governance"), reason="leak")
    assert key.kid not in published(client, LTI_JWKS)


def test_a_token_signed_before_rotation_still_verifies_against_the_jwks_after_it(
    client, master_key
):
    before = services.sign_jwt(purpose=LTI, payload={"sub": "u1", "nonce": "n1"})

    services.signing_keys_rotate(purpose=LTI)
    after = services.sign_jwt(purpose=LTI, payload={"sub": "u2"})

    jwks = published(client, LTI_JWKS)
    assert verify(before, jwks)["sub"] == "u1"
    assert verify(after, jwks)["sub"] == "u2"
    assert jwt.get_unverified_header(before)["kid"] != jwt.get_unverified_header(after)["kid"]


def test_the_evidence_jwks_keeps_every_key_for_good_and_marks_revoked_ones(
    client, master_key, staff_user_factory, settings
):
    settings.INTERCHANGE_LTI_KEY_RETIRED_OVERLAP_HOURS = 1  # must not apply to evidence keys
    old_export = services.sign_jwt(purpose=EVIDENCE, payload={"pack": "vendor-a"})
    first = services.signing_key_active(purpose=EVIDENCE)
    services.signing_keys_rotate(purpose=EVIDENCE)
    SigningKey.objects.filter(kid=first.kid).update(
        retired_at=timezone.now() - timedelta(days=3 * 365)
    )
    compromised = services.signing_key_active(purpose=EVIDENCE)
    services.signing_key_revoke(
        key=compromised, actor=staff_user_factory(role="governance"), reason="HSM lost"
    )

    jwks = published(client, EVIDENCE_JWKS)

    assert set(jwks) == set(
        SigningKey.objects.filter(purpose=EVIDENCE).values_list("kid", flat=True)
    )
    assert verify(old_export, jwks)["pack"] == "vendor-a"  # years later, still verifies
    assert jwks[compromised.kid]["revoked"] is True
    assert jwks[compromised.kid]["revoked_at"]
    assert "revoked" not in jwks[first.kid]
    assert not (set(jwks) & set(published(client, LTI_JWKS)))


def test_jwks_endpoints_answer_get_only(client, master_key):
    assert client.post(LTI_JWKS).status_code == 405
    assert client.post(EVIDENCE_JWKS).status_code == 405


# --- command ---------------------------------------------------------------------------------


def test_rotate_signing_keys_command_rotates_and_reports_json(master_key, capsys):
    first = services.signing_key_active(purpose=LTI)

    call_command("rotate_signing_keys", "--purpose", "lti", "--json")

    import json

    report = json.loads(capsys.readouterr().out)
    assert report["purpose"] == "lti"
    assert report["active"] == services.signing_key_active(purpose=LTI).kid != first.kid
    assert {k["kid"]: k["state"] for k in report["keys"]}[first.kid] == State.RETIRED


def test_the_scheduled_lti_rotation_runs_only_when_the_active_key_is_old_enough(
    master_key, settings
):
    from apps.keys.tasks import rotate_lti_signing_keys_if_due_task

    settings.INTERCHANGE_LTI_KEY_MAX_AGE_DAYS = 30
    first = services.signing_key_active(purpose=LTI)

    assert rotate_lti_signing_keys_if_due_task.delay().get() is None
    SigningKey.objects.filter(pk=first.pk).update(activated_at=timezone.now() - timedelta(days=31))
    rotated_to = rotate_lti_signing_keys_if_due_task.delay().get()

    assert rotated_to == services.signing_key_active(purpose=LTI).kid != first.kid
