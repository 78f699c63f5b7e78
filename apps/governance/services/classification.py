"""Overriding a column's default classification: proposed by one person, reviewed by another.

A reclassification changes who may approve releasing a column (a column made
"directory" no longer needs two approvers), so it takes the same two-person care as a
sensitive approval, and both steps are audited.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.audit import audit
from apps.audit.models import FieldClass
from apps.governance.classification import FIELD_CLASSES, UNKNOWN_FIELD
from apps.governance.models import FieldClassification

PERMISSION_CLASSIFY = "governance.change_fieldclassification"

ERROR_NOT_ALLOWED = "You are not allowed to change the data classification."
ERROR_SELF_REVIEW = "You proposed this classification: another member of staff must review it."
ERROR_ALREADY_REVIEWED = "This classification is already reviewed."
ERROR_REASON_REQUIRED = "Say why the default classification is wrong for this school."
ERROR_UNKNOWN_CLASS = "Unknown field class {cls!r}."


class ClassificationRefused(ValueError):
    pass


@transaction.atomic
def field_classification_propose(  # type: ignore[no-untyped-def]
    *, entity: str, column: str, field_class: str, reason: str, actor
) -> FieldClassification:
    """Propose (or re-propose) the class of one column; it has no effect until reviewed."""
    if not actor.has_perm(PERMISSION_CLASSIFY):
        raise ClassificationRefused(ERROR_NOT_ALLOWED)
    if f"{entity}.{column}" not in FIELD_CLASSES:
        raise ClassificationRefused(UNKNOWN_FIELD.format(field=f"{entity}.{column}"))
    if field_class not in FieldClass.values:
        raise ClassificationRefused(ERROR_UNKNOWN_CLASS.format(cls=field_class))
    if not (reason or "").strip():
        raise ClassificationRefused(ERROR_REASON_REQUIRED)
    row, _ = FieldClassification.objects.update_or_create(
        entity=entity, column=column,
        defaults={"field_class": field_class, "reason": reason.strip(), "proposed_by": actor,
                  "proposed_at": timezone.now(), "reviewed_by": None, "reviewed_at": None},
    )
    audit.record(
        actor=actor, action="governance.classification_proposed", target=row,
        details={"field": f"{entity}.{column}", "default": FIELD_CLASSES[f"{entity}.{column}"],
                 "proposed": field_class, "reason": reason.strip()},
    )
    return row


@transaction.atomic
def field_classification_review(  # type: ignore[no-untyped-def]
    *, classification: FieldClassification, actor
) -> FieldClassification:
    """Accept a proposed classification: from now on it decides the column's class."""
    row = FieldClassification.objects.select_for_update().get(pk=classification.pk)
    if not actor.has_perm(PERMISSION_CLASSIFY):
        raise ClassificationRefused(ERROR_NOT_ALLOWED)
    if row.reviewed_at is not None:
        raise ClassificationRefused(ERROR_ALREADY_REVIEWED)
    if row.proposed_by_id == actor.pk:
        raise ClassificationRefused(ERROR_SELF_REVIEW)
    row.reviewed_by = actor
    row.reviewed_at = timezone.now()
    row.save(update_fields=["reviewed_by", "reviewed_at"])
    audit.record(
        actor=actor, action="governance.classification_reviewed", target=row,
        details={"field": f"{row.entity}.{row.column}", "class": row.field_class},
    )
    classification.refresh_from_db()
    return row
