"""The data classification of every canonical roster column.

The class of a column decides how hard it is to release: identifiers travel with any
entity that is released at all; directory and contact data need one approver;
demographic, special-category and credential data need two approvers and a DPIA
(``SENSITIVE_CLASSES``). Defaults live here, in code, so that a new canonical column
cannot ship unclassified (tests/governance/test_classification.py pins that every column
of every canonical model has a class). A school may override a default through a
*reviewed* ``FieldClassification`` row (proposed by one member of governance staff,
reviewed by another); unreviewed proposals have no effect.

For bulk use (the release policy classifies every column on every call) use
``column_classes()``: one query for all overrides. ``field_class_of()`` is the
single-column convenience and reads the overrides each time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from apps.audit.models import FieldClass

# Columns every canonical table has that are bookkeeping, not data: never released.
BOOKKEEPING_COLUMNS = frozenset(
    {"id", "source", "content_hash", "valid_from_version", "valid_to_version"}
)

SENSITIVE_CLASSES = frozenset(
    {FieldClass.DEMOGRAPHIC.value, FieldClass.SPECIAL_CATEGORY.value, FieldClass.CREDENTIAL.value}
)

_I = FieldClass.IDENTIFIER.value
_D = FieldClass.DIRECTORY.value
_C = FieldClass.CONTACT.value
_DEM = FieldClass.DEMOGRAPHIC.value
_SPC = FieldClass.SPECIAL_CATEGORY.value
_A = FieldClass.ASSESSMENT.value
_CR = FieldClass.CREDENTIAL.value


def _entity(entity: str, **columns: str) -> dict[str, str]:
    # sourcedId and dateLastModified identify a record in every entity.
    base = {"sourced_id": _I, "date_last_modified": _I}
    return {f"{entity}.{column}": cls for column, cls in (base | columns).items()}


FIELD_CLASSES: dict[str, str] = {
    **_entity(
        "orgs", name=_D, type=_D, identifier=_D, parent_sourced_id=_I,
    ),
    **_entity(
        "academicSessions", title=_D, type=_D, start_date=_D, end_date=_D,
        parent_sourced_id=_I, school_year=_D,
    ),
    **_entity(
        "courses", school_year_sourced_id=_I, title=_D, course_code=_D, grades=_D,
        org_sourced_id=_I, subjects=_D, subject_codes=_D,
    ),
    **_entity(
        "classes", title=_D, grades=_D, course_sourced_id=_I, class_code=_D, class_type=_D,
        location=_D, school_sourced_id=_I, term_sourced_ids=_I, subjects=_D, subject_codes=_D,
        periods=_D,
    ),
    **_entity(
        "users",
        enabled_user=_D,
        username=_D,
        # Other systems' ids for the person (MIS number, IdP id): linkable, so not an
        # always-released identifier.
        user_ids=_D,
        given_name=_D,
        family_name=_D,
        middle_name=_D,
        identifier=_D,
        email=_C,
        sms=_C,
        phone=_C,
        # Links a pupil to their parents and carers: family relationships are contact data,
        # released only when contact data is approved.
        agent_sourced_ids=_C,
        grades=_D,
        user_master_identifier=_D,
        preferred_given_name=_D,
        preferred_middle_name=_D,
        preferred_family_name=_D,
        primary_org_sourced_id=_I,
        # Can disclose gender identity.
        pronouns=_DEM,
    ),
    **_entity(
        "roles", user_sourced_id=_I, role_type=_D, role=_D, begin_date=_D, end_date=_D,
        org_sourced_id=_I, user_profile_sourced_id=_I,
    ),
    # Profiles describe a person's accounts in other applications: all credential data.
    **_entity(
        "userProfiles", user_sourced_id=_I, profile_type=_CR, vendor_id=_CR,
        application_id=_CR, description=_CR, credential_type=_CR, username=_CR,
    ),
    **_entity(
        "enrollments", class_sourced_id=_I, school_sourced_id=_I, user_sourced_id=_I,
        role=_D, primary=_D, begin_date=_D, end_date=_D,
    ),
    **_entity(
        "demographics",
        birth_date=_DEM,
        sex=_DEM,
        # Racial or ethnic origin: special category data (UK/EU GDPR art. 9).
        american_indian_or_alaska_native=_SPC,
        asian=_SPC,
        black_or_african_american=_SPC,
        native_hawaiian_or_other_pacific_islander=_SPC,
        white=_SPC,
        demographic_race_two_or_more_races=_SPC,
        hispanic_or_latino_ethnicity=_SPC,
        country_of_birth_code=_DEM,
        state_of_birth_abbreviation=_DEM,
        city_of_birth=_DEM,
        public_school_residence_status=_DEM,
    ),
    **_entity("categories", title=_A, weight=_A),
    **_entity(
        "lineItems", title=_A, description=_A, assign_date=_A, due_date=_A,
        class_sourced_id=_I, category_sourced_id=_I, academic_session_sourced_id=_I,
        result_value_min=_A, result_value_max=_A, school_sourced_id=_I,
    ),
    **_entity(
        "results", line_item_sourced_id=_I, student_sourced_id=_I, score_status=_A, score=_A,
        score_date=_A, comment=_A, text_score=_A, class_sourced_id=_I, in_progress=_A,
        incomplete=_A, late=_A, missing=_A,
    ),
    **_entity(
        "scoreScales", title=_A, type=_A, org_sourced_id=_I, course_sourced_id=_I,
        class_sourced_id=_I, score_scale_value=_A,
    ),
}

UNKNOWN_FIELD = "unknown field {field!r}: expected entity.column of a canonical roster entity"


def canonical_columns(entity: str) -> tuple[str, ...]:
    """The data columns of a canonical entity, in model order (bookkeeping excluded)."""
    from apps.roster.models import CANONICAL_MODELS

    model = CANONICAL_MODELS[entity]
    return tuple(
        f.name for f in model._meta.concrete_fields if f.name not in BOOKKEEPING_COLUMNS
    )


def all_fields() -> tuple[str, ...]:
    """Every canonical "entity.column", in entity and model order."""
    from apps.roster.models import CANONICAL_MODELS

    return tuple(f"{e}.{c}" for e in CANONICAL_MODELS for c in canonical_columns(e))


def reviewed_overrides() -> dict[str, str]:
    """{"entity.column": class} of reviewed overrides (one query)."""
    from apps.governance.models import FieldClassification

    return {
        f"{entity}.{column}": cls
        for entity, column, cls in FieldClassification.objects.filter(
            reviewed_at__isnull=False
        ).values_list("entity", "column", "field_class")
    }


def classification_map(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """{"entity.column": class} for every canonical column, overrides applied."""
    overrides = reviewed_overrides() if overrides is None else overrides
    return {**FIELD_CLASSES, **{k: v for k, v in overrides.items() if k in FIELD_CLASSES}}


def column_classes() -> dict[str, dict[str, str]]:
    """{entity: {column: class}} for every canonical entity (one query)."""
    from apps.roster.models import CANONICAL_MODELS

    classes = classification_map()
    return {
        entity: {column: classes[f"{entity}.{column}"] for column in canonical_columns(entity)}
        for entity in CANONICAL_MODELS
    }


def field_class_of(
    entity: str, column: str, *, overrides: Mapping[str, str] | None = None
) -> str:
    """The class of one canonical column (a reviewed override wins over the default)."""
    key = f"{entity}.{column}"
    if key not in FIELD_CLASSES:
        raise KeyError(UNKNOWN_FIELD.format(field=key))
    if overrides is None:
        from apps.governance.models import FieldClassification

        row = FieldClassification.objects.filter(
            entity=entity, column=column, reviewed_at__isnull=False
        ).values_list("field_class", flat=True).first()
        return row or FIELD_CLASSES[key]
    return overrides.get(key, FIELD_CLASSES[key])


def fields_for_classes(
    entity: str, classes: Iterable[str], extra_fields: Iterable[str] = (),
    *, classification: Mapping[str, str] | None = None,
) -> list[str]:
    """The columns of ``entity`` released for approved ``classes`` and single fields.

    Empty when nothing of the entity is approved; otherwise its identifier columns come
    with it, as a record cannot be rendered without its sourcedId and references.
    """
    classification = classification_map() if classification is None else classification
    classes = set(classes)
    extra = set(extra_fields)
    columns = canonical_columns(entity)
    approved = [
        c for c in columns
        if classification[f"{entity}.{c}"] in classes and classification[f"{entity}.{c}"] != _I
        or f"{entity}.{c}" in extra
    ]
    if not approved:
        return []
    return [c for c in columns if c in approved or classification[f"{entity}.{c}"] == _I]


def classes_of_fields(
    fields: Iterable[str], *, classification: Mapping[str, str] | None = None
) -> dict[str, str]:
    """{"entity.column": class} for the given single fields (unknown fields raise KeyError)."""
    classification = classification_map() if classification is None else classification
    result = {}
    for name in fields:
        if name not in classification:
            raise KeyError(UNKNOWN_FIELD.format(field=name))
        result[name] = classification[name]
    return result
