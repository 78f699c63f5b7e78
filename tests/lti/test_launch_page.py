"""The launch page: a signed-in pupil or teacher sees their current classes and the approved
tools of each; the hand-off pages keep a strict Content-Security-Policy."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.roster.models import Enrollment
from tests.lti.conftest import PASSWORD, register_tool
from tests.lti.tool import ClientBrowser

pytestmark = pytest.mark.django_db


def sections(html: str) -> dict[str, str]:
    return dict(re.findall(r'<section class="class" data-class="([^"]+)">(.*?)</section>',
                           html, re.S))


def test_the_page_needs_a_signed_in_account(school):
    response = Client().get("/launch/")
    assert response.status_code == 302
    assert response["Location"].startswith("/launch/login/")


def test_a_pupil_sees_their_classes_and_the_approved_tools(school):
    tool = register_tool(name="Maths Arena")
    page = ClientBrowser("pupil.one", PASSWORD).launch_page().content.decode()
    found = sections(page)
    assert set(found) == {"cls1", "cls2"}
    assert "Maths Arena" in found["cls1"] and tool.client_id in found["cls1"]
    assert "Add content" not in page
    assert "cls9" not in page


def test_a_teacher_may_add_content_where_deep_linking_is_approved(school):
    register_tool(name="With DL")
    register_tool(name="Launch only", services=("lti.launch",))
    page = ClientBrowser("teacher.one", PASSWORD).launch_page().content.decode()
    tools = dict(re.findall(r'<div class="tool" data-client-id="[^"]+">\s*<strong>([^<]+)'
                            r"</strong>(.*?)</div>", sections(page)["cls1"], re.S))
    assert "Add content" in tools["With DL"]
    assert "Add content" not in tools["Launch only"]


def test_a_pupil_who_left_a_class_no_longer_sees_it(school):
    register_tool(name="Maths Arena")
    Enrollment.objects.filter(user_sourced_id="p1", class_sourced_id="cls2").update(
        valid_to_version=2)
    page = ClientBrowser("pupil.one", PASSWORD).launch_page().content.decode()
    assert set(sections(page)) == {"cls1"}


def test_an_account_not_linked_to_the_roster_sees_a_plain_message(school):
    get_user_model().objects.create_user(username="visitor", password=PASSWORD)
    client = Client()
    client.post("/launch/login/", {"username": "visitor", "password": PASSWORD})
    response = client.get("/launch/")
    assert response.status_code == 403
    assert b"not linked" in response.content


def test_hand_off_pages_widen_form_action_by_the_tool_origin_only(school):
    tool = register_tool()
    browser = ClientBrowser("pupil.one", PASSWORD)
    response = browser.client.post("/launch/start", {"client_id": tool.client_id,
                                                     "class": "cls1"})
    policy = response["Content-Security-Policy"]
    assert "form-action 'self' https://tool.example" in policy
    assert "script-src 'self'" in policy
    assert "<script src=" in response.content.decode() and "unsafe-inline" not in policy.split(
        "script-src")[1].split(";")[0]
    assert "no-store" in response["Cache-Control"]
