"""Data classification in the admin: every canonical field with its class, and overrides.

The list shows the school's overrides (proposed, then reviewed by a second person); the
"All fields" page shows the class in force for every canonical column, default or not,
so a DPO can answer "what class is users.pronouns here?" without reading code.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from apps.audit.models import FieldClass
from apps.governance.classification import (
    FIELD_CLASSES,
    SENSITIVE_CLASSES,
    classification_map,
    reviewed_overrides,
)
from apps.governance.models import FieldClassification
from apps.governance.services import classification as svc


class FieldClassificationForm(forms.ModelForm):
    field = forms.ChoiceField(choices=[(f, f) for f in FIELD_CLASSES], label="Field")

    class Meta:
        model = FieldClassification
        fields = ("field_class", "reason")

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["field"].initial = f"{self.instance.entity}.{self.instance.column}"


def _class_badge(cls: str) -> str:
    kind = "critical" if cls in SENSITIVE_CLASSES else "info"
    return format_html('<span class="ix-badge ix-badge-{}">{}</span>', kind,
                       FieldClass(cls).label if cls in FieldClass.values else cls)


@admin.register(FieldClassification)
class FieldClassificationAdmin(SimpleHistoryAdmin):
    form = FieldClassificationForm
    list_display = ("field_name", "default_class", "override_class", "state", "proposed_by",
                    "reviewed_by")
    list_filter = ("entity", "field_class")
    search_fields = ("entity", "column", "reason")
    list_select_related = ("proposed_by", "reviewed_by")
    actions = ("review_selected",)
    change_list_template = "admin/governance/fieldclassification/change_list.html"
    fields = ("field", "field_class", "reason")

    def get_urls(self):  # type: ignore[no-untyped-def]
        return [
            path("all/", self.admin_site.admin_view(self.all_fields_view),
                 name="governance_fieldclassification_all"),
            *super().get_urls(),
        ]

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    @admin.display(description="Field", ordering="entity")
    def field_name(self, obj: FieldClassification) -> str:
        return f"{obj.entity}.{obj.column}"

    @admin.display(description="Default (in code)")
    def default_class(self, obj: FieldClassification) -> str:
        return _class_badge(FIELD_CLASSES.get(f"{obj.entity}.{obj.column}", ""))

    @admin.display(description="Override")
    def override_class(self, obj: FieldClassification) -> str:
        return _class_badge(obj.field_class)

    @admin.display(description="State")
    def state(self, obj: FieldClassification) -> str:
        if obj.is_reviewed:
            return format_html('<span class="ix-badge ix-badge-ok">In force</span>')
        return format_html('<span class="ix-badge ix-badge-warning">Awaiting review</span>')

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        entity, column = form.cleaned_data["field"].split(".", 1)
        try:
            row = svc.field_classification_propose(
                entity=entity, column=column, field_class=form.cleaned_data["field_class"],
                reason=form.cleaned_data["reason"], actor=request.user)
        except svc.ClassificationRefused as refused:
            self.message_user(request, str(refused), messages.ERROR)
            return
        obj.pk = row.pk
        obj.__dict__.update(row.__dict__)
        self.message_user(request, "Proposed. It takes effect once another member of staff "
                                   "reviews it.", messages.INFO)

    def log_addition(self, request, obj, message):  # type: ignore[no-untyped-def]
        return None

    def log_change(self, request, obj, message):  # type: ignore[no-untyped-def]
        return None

    @admin.action(description="Review and put in force", permissions=["change"])
    def review_selected(self, request, queryset) -> None:  # type: ignore[no-untyped-def]
        for row in queryset:
            try:
                svc.field_classification_review(classification=row, actor=request.user)
                self.message_user(request, f"{row.entity}.{row.column} is now "
                                           f"{row.field_class}.", messages.SUCCESS)
            except svc.ClassificationRefused as refused:
                self.message_user(request, f"{row.entity}.{row.column}: {refused}",
                                  messages.ERROR)

    def all_fields_view(self, request):  # type: ignore[no-untyped-def]
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        in_force = classification_map(reviewed_overrides())
        pending = set(
            f"{e}.{c}" for e, c in FieldClassification.objects.filter(reviewed_at__isnull=True)
            .values_list("entity", "column")
        )
        entities: dict[str, list[dict]] = {}
        for name, default in FIELD_CLASSES.items():
            entity, column = name.split(".", 1)
            cls = in_force[name]
            entities.setdefault(entity, []).append({
                "column": column, "cls": cls, "label": FieldClass(cls).label,
                "sensitive": cls in SENSITIVE_CLASSES, "overridden": cls != default,
                "default": default, "pending": name in pending,
            })
        context = {
            **self.admin_site.each_context(request),
            "title": "Data classification of every canonical field",
            "entities": entities,
            "opts": self.model._meta,
            "overrides_url": reverse("admin:governance_fieldclassification_changelist"),
        }
        return TemplateResponse(request, "admin/governance/fieldclassification/all.html",
                                context)
