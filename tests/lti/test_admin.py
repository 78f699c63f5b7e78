"""The registration admin: adding a tool goes through ``registration_create`` (generated client
id, default deployment, kid from the pasted key, audit); bad input is refused by the form.

Staff roles get their LTI permissions in ``apps/accounts/roles.py`` (the lead's file); until
then a break-glass superuser drives these pages.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from apps.keys.jwk import jwk_thumbprint, rsa_public_jwk
from apps.lti.models import ToolRegistration
from apps.lti.tool_keys import public_key_from_pem
from apps.vendors.models import Integration, IntegrationKind
from tests.governance import release_world as world
from tests.lti.tool import rsa_key_pair

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_superuser("root.breakglass", "r@x.example", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def lti_integration():  # type: ignore[no-untyped-def]
    return Integration.objects.create(vendor=world.vendor(), name="Admin tool",
                                      kind=IntegrationKind.LTI_TOOL)


def form(integration, **changes):  # type: ignore[no-untyped-def]
    _, public = rsa_key_pair()
    data = {
        "integration": integration.pk, "login_initiation_url": "https://t.example/login",
        "redirect_uris": "https://t.example/launch\nhttps://t.example/launch2",
        "target_link_uris": "https://t.example/launch", "jwks_url": "",
        "public_key_pem": public, "custom": "{}",
        "deployments-TOTAL_FORMS": "0", "deployments-INITIAL_FORMS": "0",
    }
    data.update(changes)
    return data


def test_adding_a_registration_generates_ids_and_keeps_uris_exact(admin_client,
                                                                   lti_integration):
    data = form(lti_integration)
    response = admin_client.post("/admin/lti/toolregistration/add/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    registration = ToolRegistration.objects.get()
    assert len(registration.client_id) >= 20
    assert registration.redirect_uris == ["https://t.example/launch", "https://t.example/launch2"]
    assert registration.deployments.count() == 1
    key, _ = public_key_from_pem(data["public_key_pem"])
    assert registration.public_key_kid == jwk_thumbprint(rsa_public_jwk(key))
    assert admin_client.get("/admin/lti/toolregistration/").status_code == 200
    assert admin_client.get(
        f"/admin/lti/toolregistration/{registration.pk}/change/").status_code == 200


@pytest.mark.parametrize("changes", [
    {"jwks_url": "https://t.example/jwks"},  # both key sources
    {"public_key_pem": ""},  # neither
    {"public_key_pem": "not a key"},
    {"redirect_uris": "https://t.example/launch#fragment"},
    {"redirect_uris": "t.example/launch"},
])
def test_the_form_refuses_bad_registrations(admin_client, lti_integration, changes):
    response = admin_client.post("/admin/lti/toolregistration/add/",
                                 form(lti_integration, **changes))
    assert response.status_code == 200
    assert not ToolRegistration.objects.exists()
