"""The keys admin is read-only, shows no private material, and rotates through the service."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from apps.keys import files, services
from apps.keys.models import SigningKey

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/keys/signingkey/"


@pytest.fixture
def superuser():  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_superuser("breakglass", password="x" * 20)


def test_pages_show_states_but_never_private_material(client, master_key, superuser):
    key = services.signing_key_active(purpose=SigningKey.Purpose.LTI)
    data_key = files.encrypt_stream(io.BytesIO(b"x"), io.BytesIO(), purpose="tests.admin")
    client.force_login(superuser)

    pages = [
        client.get(CHANGELIST),
        client.get(f"{CHANGELIST}{key.pk}/change/"),
        client.get("/admin/keys/datakey/"),
        client.get(f"/admin/keys/datakey/{data_key.pk}/change/"),
    ]

    for page in pages:
        assert page.status_code == 200
        body = page.content.decode()
        assert "PRIVATE KEY" not in body
        assert "wrapped" not in body.lower()
    assert key.kid in pages[0].content.decode()
    assert "Active" in pages[0].content.decode()


def test_nobody_adds_changes_or_deletes_keys_through_the_admin(client, master_key, superuser):
    key = services.signing_key_active(purpose=SigningKey.Purpose.LTI)
    client.force_login(superuser)

    assert client.get(f"{CHANGELIST}add/").status_code == 403
    assert client.get(f"{CHANGELIST}{key.pk}/delete/").status_code == 403
    client.post(f"{CHANGELIST}{key.pk}/change/", {"state": "revoked"})
    key.refresh_from_db()
    assert key.state == SigningKey.State.ACTIVE


def test_rotate_now_rotates_the_selected_purpose_as_the_signed_in_user(
    client, master_key, superuser
):
    first = services.signing_key_active(purpose=SigningKey.Purpose.LTI)
    client.force_login(superuser)

    response = client.post(
        CHANGELIST, {"action": "rotate_now", "_selected_action": [first.pk]}, follow=True
    )

    assert response.status_code == 200
    first.refresh_from_db()
    assert first.state == SigningKey.State.RETIRED
    assert "is now active" in response.content.decode()
    activated = SigningKey.objects.get(purpose="lti", state=SigningKey.State.ACTIVE)
    assert activated.history.latest().history_user == superuser


def test_rotate_now_needs_the_change_permission(client, master_key, staff_user_factory):
    first = services.signing_key_active(purpose=SigningKey.Purpose.LTI)
    auditor = staff_user_factory(role="auditor")  # may view keys, not rotate them
    client.force_login(auditor)

    page = client.get(CHANGELIST)
    assert page.status_code == 200
    assert "rotate_now" not in page.content.decode()
    client.post(CHANGELIST, {"action": "rotate_now", "_selected_action": [first.pk]})
    first.refresh_from_db()
    assert first.state == SigningKey.State.ACTIVE

    engineer = staff_user_factory(role="engineer")
    engineer.user_permissions.add(Permission.objects.get(codename="change_signingkey"))
    client.force_login(engineer)
    assert "rotate_now" in client.get(CHANGELIST).content.decode()
