"""The id_token of a launch, built from a ``LaunchContext`` (and so from the release policy).

Minimised by construction: a pseudonymous ``sub`` (the vendor's pseudonym, the same one its
other channels see), roles and context always; personal OIDC claims only those the release
approves (``release.claims``), after overrides (a preferred name replaces the recorded one;
a hide-from-directory override withholds name and email); service claims only when approved.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings

from apps.audit.models import FieldClass
from apps.governance.pseudonyms import pseudonymiser_for_vendor
from apps.lti.models import LaunchHint, MessageType, ResourceLink
from apps.lti.roles import lis_roles
from apps.lti.selectors import LaunchContext

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
NRPS_CLAIM = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
LTI_VERSION = "1.3.0"
ID_TOKEN_SECONDS = 300
PERSONAL_CLAIMS = ("name", "given_name", "family_name", "email")
PLATFORM_NAME = "Interchange"
PLATFORM_PRODUCT = "interchange"
PLATFORM_VERSION = "1"


def issuer() -> str:
    return settings.INTERCHANGE_PUBLIC_URL


def absolute(path: str) -> str:
    return settings.INTERCHANGE_PUBLIC_URL + path


def _names(ctx: LaunchContext) -> tuple[str | None, str | None, bool]:
    """(given, family, hidden): the released names (a preferred-name override is already
    applied by the release), and whether a hide-from-directory override withholds every
    personal claim of this person."""
    person = ctx.person
    given = person.get("preferred_given_name") or person.get("given_name")
    family = person.get("preferred_family_name") or person.get("family_name")
    hidden = any(rule.kind == "hide_directory" and rule.user_sourced_id == person["sourced_id"]
                 for rule in ctx.release.overrides)
    return given, family, hidden


def personal_claims(ctx: LaunchContext) -> dict[str, str]:
    approved = ctx.release.claims
    given, family, hidden = _names(ctx)
    if hidden:
        return {}
    out: dict[str, str] = {}
    if "given_name" in approved and given:
        out["given_name"] = given
    if "family_name" in approved and family:
        out["family_name"] = family
    if "name" in approved and (given or family):
        out["name"] = " ".join(part for part in (given, family) if part)
    if "email" in approved and ctx.person.get("email"):
        out["email"] = ctx.person["email"]
    return out


def disclosed_field_classes(claims: dict[str, Any], *,
                            column_classes: Any = None) -> list[str]:
    """The field classes a token carries: identifiers always; names and email by class
    (from the release's ``column_classes`` when given: the classification it was built
    with, and no second query)."""
    from apps.governance.classification import classification_map
    from apps.governance.services.requests import CLAIM_FIELDS

    classes = {FieldClass.IDENTIFIER.value}
    if not any(claim in claims for claim in PERSONAL_CLAIMS):
        return sorted(classes)
    if column_classes is not None:
        cmap = {f"{entity}.{column}": cls for entity, columns in column_classes.items()
                for column, cls in columns.items()}
    else:
        cmap = classification_map()
    for claim in PERSONAL_CLAIMS:
        if claim in claims:
            classes.update(cmap[f] for f in CLAIM_FIELDS[claim] if f in cmap)
    return sorted(classes)


def subject(ctx: LaunchContext) -> str:
    """The vendor's pseudonym of the person: stable, the same in every channel of the vendor."""
    release = ctx.release
    if release.pseudonymised:
        return ctx.person["released_sourced_id"]  # the release's pseudonym: REST's sourcedId
    return pseudonymiser_for_vendor(release.vendor_id).pseudonym(ctx.person["sourced_id"])


def id_token_claims(
    ctx: LaunchContext, *, hint: LaunchHint, nonce: str, now: dt.datetime,
    link: ResourceLink | None, deep_linking_data: str | None = None,
) -> dict[str, Any]:
    registration = ctx.registration
    klass = ctx.klass
    iat = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer(),
        "aud": registration.client_id,
        "azp": registration.client_id,
        "sub": subject(ctx),
        "iat": iat,
        "nbf": iat,
        "exp": iat + ID_TOKEN_SECONDS,
        "nonce": nonce,
        LTI + "message_type": hint.message_type,
        LTI + "version": LTI_VERSION,
        LTI + "deployment_id": ctx.deployment.deployment_id,
        LTI + "target_link_uri": hint.target_link_uri,
        LTI + "roles": lis_roles(enrollment_roles=ctx.enrollment_roles,
                                 org_roles=ctx.org_roles),
        LTI + "context": {
            "id": klass["sourced_id"],
            "label": klass.get("class_code") or klass["title"],
            "title": klass["title"],
            "type": ["http://purl.imsglobal.org/vocab/lis/v2/course#CourseSection"],
        },
        LTI + "tool_platform": {
            "guid": issuer(),
            "name": PLATFORM_NAME,
            "product_family_code": PLATFORM_PRODUCT,
            "version": PLATFORM_VERSION,
        },
        LTI + "launch_presentation": {
            "document_target": "window",
            "return_url": absolute("/launch/"),
            "locale": settings.LANGUAGE_CODE,
        },
        LTI + "custom": {**(registration.custom or {}), **((link.custom or {}) if link else {})},
    }
    if ctx.release.columns("users") and "sourced_id" in ctx.release.columns("users"):
        claims[LTI + "lis"] = {
            "person_sourcedid": ctx.person["released_sourced_id"],
            "course_section_sourcedid": klass["sourced_id"],
        }
    if hint.message_type == MessageType.RESOURCE_LINK and link is not None:
        resource: dict[str, Any] = {"id": str(link.id)}
        if link.title:
            resource["title"] = link.title
        if link.text:
            resource["description"] = link.text
        claims[LTI + "resource_link"] = resource
    if hint.message_type == MessageType.DEEP_LINKING:
        claims[DL + "deep_linking_settings"] = {
            "deep_link_return_url": absolute("/lti/deep-linking/return"),
            "accept_types": ["ltiResourceLink"],
            "accept_presentation_document_targets": ["window"],
            "accept_multiple": True,
            "auto_create": True,
            "title": klass["title"],
            "data": deep_linking_data,
        }
    claims.update(personal_claims(ctx))
    return claims


def context_path(context_id: Any) -> str:
    return f"/lti/contexts/{context_id}"


def service_claims(*, context_id: Any, nrps: bool, ags_scopes: list[str],
                   lineitem_id: Any = None) -> dict[str, Any]:
    """The Names and Roles and AGS claims of a launch, for the services it is approved for
    (none of either when it is approved for neither). URLs are lowercase throughout."""
    out: dict[str, Any] = {}
    base = absolute(context_path(context_id))
    if nrps:
        out[NRPS_CLAIM] = {"context_memberships_url": base + "/memberships",
                           "service_versions": ["2.0"]}
    if ags_scopes:
        endpoint: dict[str, Any] = {"scope": ags_scopes, "lineitems": base + "/lineitems"}
        if lineitem_id is not None:
            endpoint["lineitem"] = f"{base}/lineitems/{lineitem_id}"
        out[AGS_CLAIM] = endpoint
    return out
