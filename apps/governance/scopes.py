"""What an integration can ask for: services, OneRoster and LTI scopes, LTI personal claims.

One catalogue, so that a request for a scope nobody implements is refused at the door,
and so that "gradebook writes" (which need two approvers) is a set, not a judgement call.
"""

from __future__ import annotations

OR = "https://purl.imsglobal.org/spec/or/v1p2/scope/"
AGS = "https://purl.imsglobal.org/spec/lti-ags/scope/"
NRPS = "https://purl.imsglobal.org/spec/lti-nrps/scope/"

ONEROSTER_SCOPES: dict[str, str] = {
    OR + "roster-core.readonly": "Roster core (read)",
    OR + "roster.readonly": "Roster (read)",
    OR + "roster-demographics.readonly": "Demographics (read)",
    OR + "gradebook-core.readonly": "Gradebook core (read)",
    OR + "gradebook.readonly": "Gradebook (read)",
    OR + "gradebook.createput": "Gradebook (create/replace)",
    OR + "gradebook.createpost": "Gradebook (create)",
    OR + "gradebook.delete": "Gradebook (delete)",
    OR + "resource-core.readonly": "Resources core (read)",
    OR + "resource.readonly": "Resources (read)",
}

LTI_SCOPES: dict[str, str] = {
    AGS + "lineitem": "AGS line items (manage)",
    AGS + "lineitem.readonly": "AGS line items (read)",
    AGS + "result.readonly": "AGS results (read)",
    AGS + "score": "AGS scores (post)",
    NRPS + "contextmembership.readonly": "Names and roles (read)",
}

SCOPES: dict[str, str] = ONEROSTER_SCOPES | LTI_SCOPES

SERVICES: dict[str, str] = {
    "oneroster.rostering": "OneRoster rostering",
    "oneroster.gradebook": "OneRoster gradebook",
    "oneroster.resources": "OneRoster resources",
    "csv.delivery": "OneRoster CSV delivery",
    "lti.launch": "LTI launch",
    "lti.deep_linking": "LTI Deep Linking",
    "lti.nrps": "LTI Names and Roles",
    "lti.ags": "LTI Assignment and Grade Services",
}

# OIDC claims in an LTI id_token that carry personal data.
CLAIMS: dict[str, str] = {
    "name": "Full name",
    "given_name": "Given name",
    "family_name": "Family name",
    "email": "Email",
}

# Writes into the school's gradebook: sensitive (two approvers).
GRADEBOOK_WRITE_SCOPES = frozenset(
    {
        OR + "gradebook.createput",
        OR + "gradebook.createpost",
        OR + "gradebook.delete",
        AGS + "lineitem",
        AGS + "score",
    }
)


def short_scope(uri: str) -> str:
    """``roster-core.readonly`` for the OneRoster URI, ``ags:score`` for LTI: for tables."""
    for prefix, label in ((OR, ""), (AGS, "ags:"), (NRPS, "nrps:")):
        if uri.startswith(prefix):
            return label + uri[len(prefix):]
    return uri


def expand_scope(name: str) -> str:
    """The full URI for a scope given in short form (commands accept both)."""
    if name in SCOPES:
        return name
    for prefix, label in ((AGS, "ags:"), (NRPS, "nrps:"), (OR, "")):
        if label and name.startswith(label):
            return prefix + name[len(label):]
        if not label and prefix + name in SCOPES:
            return prefix + name
    return name
