"""Reviewed overrides of the data classification kept in code (apps/governance/classification.py).

The defaults live in code so that a new canonical column cannot ship unclassified (a test
pins it). A school may still disagree with a default: it proposes an override here, and a
second member of governance staff reviews it before it takes effect, because lowering a
column's class changes who may approve releasing it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from simple_history.models import HistoricalRecords

from apps.audit.models import FieldClass

__all__ = ["FieldClassification"]


class FieldClassification(models.Model):
    entity = models.CharField(max_length=50, help_text='Canonical entity, e.g. "users".')
    column = models.CharField(max_length=100, help_text='Canonical column, e.g. "email".')
    field_class = models.CharField(max_length=30, choices=FieldClass.choices)
    reason = models.TextField(help_text="Why the default class is wrong for this school.")
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    proposed_at = models.DateTimeField(auto_now_add=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["entity", "column"]
        verbose_name = "field classification override"
        constraints = [
            models.UniqueConstraint(
                fields=["entity", "column"], name="governance_fieldclass_one_per_column"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.entity}.{self.column} = {self.field_class}"

    @property
    def is_reviewed(self) -> bool:
        return self.reviewed_at is not None
