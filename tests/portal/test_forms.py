"""Admin forms read a URL typed without a scheme as an https one (Django 6's default)."""

from __future__ import annotations

from apps.delivery.admin import SisSourceAdmin
from apps.lti.admin import ToolRegistrationForm
from apps.lti.models import ToolRegistration
from portal.forms import HTTPS_URL_FIELDS, https_formfield


def test_a_url_without_a_scheme_is_read_as_https():
    field = https_formfield(ToolRegistration._meta.get_field("jwks_url"))

    assert field.clean("keys.example.org/jwks") == "https://keys.example.org/jwks"
    assert field.clean("http://keys.example.org/jwks") == "http://keys.example.org/jwks"


def test_the_admin_forms_with_editable_urls_assume_https():
    form = ToolRegistrationForm()
    assert form.fields["login_initiation_url"].assume_scheme == "https"
    assert SisSourceAdmin.formfield_overrides == HTTPS_URL_FIELDS
