"""Helpers for the LTI Advantage service tests: a launch in process (to read the service
claims the platform sends), a client assertion, and a token from /lti/token."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from django.conf import settings

from tests.lti.conftest import PASSWORD, Registered
from tests.lti.tool import ClientBrowser, Tool

NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
LINEITEM_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
RESULTS = "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly"
SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
ALL_SCOPES = (NRPS, LINEITEM, LINEITEM_READONLY, RESULTS, SCORE)
ADVANTAGE = ("lti.launch", "lti.deep_linking", "lti.nrps", "lti.ags")
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
LEARNER = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
INSTRUCTOR = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"


def launch_claims(registered: Registered, username: str = "teacher.one",
                  class_id: str = "cls1", **extra: str) -> dict[str, Any]:
    """The claims of a launch's id_token, launched through the portal in process (the
    signature is checked by the live-server tests; here we read what was sent)."""
    browser = ClientBrowser(username, PASSWORD)
    tool = Tool(issuer=settings.INTERCHANGE_PUBLIC_URL, client_id=registered.client_id,
                deployment_ids=[registered.deployment_id], private_pem=registered.private_pem,
                public_pem=registered.public_pem, key_set={"keys": []})
    initiation = browser.start(registered.client_id, class_id, **extra)
    assert initiation.action, initiation.text
    answer = browser.follow(tool.oidc_login(initiation))
    assert "id_token" in answer.fields, answer.text
    return jwt.decode(answer.fields["id_token"], options={"verify_signature": False})


def assertion(registered: Registered, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": registered.client_id, "sub": registered.client_id,
               "aud": settings.INTERCHANGE_PUBLIC_URL + "/lti/token", "iat": now - 5,
               "exp": now + 60, "jti": str(uuid.uuid4()), **claims}
    return jwt.encode(payload, registered.private_pem, algorithm="RS256",
                      headers={"kid": registered.registration.public_key_kid})


def token_for(client: Any, registered: Registered, *scopes: str) -> str:
    response = client.post("/lti/token", {
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(registered), "scope": " ".join(scopes or (NRPS,)),
    })
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def path_of(url: str) -> str:
    """The path and query of a platform URL, for Django's test client."""
    return url[len(settings.INTERCHANGE_PUBLIC_URL):]


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}
