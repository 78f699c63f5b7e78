"""Every canonical column has a class in code; overrides count only once reviewed."""

from __future__ import annotations

import pytest

from apps.audit.models import FieldClass
from apps.governance import classification
from apps.governance.services import classification as svc
from apps.roster.models import CANONICAL_MODELS


def test_every_canonical_column_of_every_entity_has_a_class():
    columns = set(classification.all_fields())
    assert columns == set(classification.FIELD_CLASSES), (
        "unclassified: " + ", ".join(sorted(columns - set(classification.FIELD_CLASSES)))
        + "; stale: " + ", ".join(sorted(set(classification.FIELD_CLASSES) - columns))
    )
    assert set(classification.FIELD_CLASSES.values()) <= set(FieldClass.values)
    assert {name.split(".")[0] for name in columns} == set(CANONICAL_MODELS)


@pytest.mark.parametrize(
    "field,expected",
    [
        ("users.sourced_id", "identifier"), ("users.given_name", "directory"),
        ("users.email", "contact"), ("users.agent_sourced_ids", "contact"),
        ("demographics.birth_date", "demographic"), ("demographics.asian", "special_category"),
        ("userProfiles.credential_type", "credential"), ("results.score", "assessment"),
        ("enrollments.user_sourced_id", "identifier"),
    ],
)
def test_defaults_follow_the_data_protection_reading(field, expected):
    assert classification.FIELD_CLASSES[field] == expected


def test_fields_for_classes_brings_identifiers_only_with_released_columns():
    cmap = classification.FIELD_CLASSES
    assert classification.fields_for_classes("users", [], classification=cmap) == []
    directory = classification.fields_for_classes("users", ["directory"], classification=cmap)
    assert "given_name" in directory and "sourced_id" in directory
    assert "primary_org_sourced_id" in directory
    assert "email" not in directory
    with_email = classification.fields_for_classes("users", ["directory"], ["users.email"],
                                                   classification=cmap)
    assert "email" in with_email
    # identifier alone releases nothing: it only travels with data
    assert classification.fields_for_classes("users", ["identifier"], classification=cmap) == []


@pytest.mark.django_db
def test_an_override_counts_only_once_another_person_reviews_it(staff_user_factory):
    dpo = staff_user_factory(username="amira.dpo", role="governance")
    lead = staff_user_factory(username="ben.itlead", role="governance")

    row = svc.field_classification_propose(entity="users", column="pronouns",
                                           field_class="directory", reason="School policy",
                                           actor=dpo)
    assert classification.field_class_of("users", "pronouns") == "demographic"

    with pytest.raises(svc.ClassificationRefused, match="another member of staff"):
        svc.field_classification_review(classification=row, actor=dpo)
    svc.field_classification_review(classification=row, actor=lead)

    assert classification.field_class_of("users", "pronouns") == "directory"
    assert classification.column_classes()["users"]["pronouns"] == "directory"


@pytest.mark.django_db
def test_engineers_cannot_reclassify(staff_user_factory):
    with pytest.raises(svc.ClassificationRefused, match=svc.ERROR_NOT_ALLOWED):
        svc.field_classification_propose(
            entity="users", column="email", field_class="directory", reason="x",
            actor=staff_user_factory(role="engineer"))


@pytest.mark.django_db
def test_the_all_fields_page_shows_every_class(client, staff_user_factory):
    client.force_login(staff_user_factory(role="governance"))
    page = client.get("/admin/governance/fieldclassification/all/")
    assert page.status_code == 200
    assert "birth_date" in page.content.decode()
