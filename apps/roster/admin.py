"""Roster admin: import runs (upload, progress, errors, holds), versions, rule sets, gates.

Records are read-only here; every write goes through a service. The staged file is
never offered for download (the run shows its name, size and hash only). Canonical
roster rows are not registered: they hold personal data and have no redacted view yet.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.roster import services, tasks
from apps.roster.ingest.mapping import DEFAULT_RULES
from apps.roster.models import (
    ImportOrigin,
    ImportRun,
    ImportRunError,
    ImportState,
    MappingRuleSet,
    QualityGate,
    RosterVersion,
    Source,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False


def _table(headers: tuple[str, ...], rows: list[tuple]) -> str:
    """A small read-only table for a run page (every value escaped by format_html)."""
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "", "<tr>{}</tr>",
        ((format_html_join("", "<td>{}</td>", ((v,) for v in row)),) for row in rows),
    )
    return format_html('<table class="run-table"><thead><tr>{}</tr></thead><tbody>{}</tbody>'
                       "</table>", head, body)


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "description", "created_at")
    search_fields = ("name",)


@admin.register(QualityGate)
class QualityGateAdmin(admin.ModelAdmin):
    list_display = ("source", "enabled", "max_change_percent", "max_delete_percent",
                    "min_records", "hold_when_learners_double")
    list_select_related = ("source",)


class UploadForm(forms.Form):
    file = forms.FileField(help_text="A OneRoster 1.1 or 1.2 CSV zip.")
    source = forms.ModelChoiceField(queryset=Source.objects.all(), required=False,
                                    help_text=f"Default: {services.DEFAULT_SOURCE_NAME}")
    dry_run = forms.BooleanField(required=False, help_text="Validate and diff; apply nothing.")


class RejectForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea, help_text="Why the import must not apply.")


@admin.register(ImportRun)
class ImportRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "source", "file_name", "state_badge", "origin", "dry_run",
                    "rows", "change_summary", "errors_link", "version", "received_at")
    list_filter = ("state", "source", "origin", "dry_run")
    list_select_related = ("source", "version")
    search_fields = ("file_name", "file_sha256")
    actions = ("approve_held",)
    exclude = ("staged_path",)  # never offer the raw file
    fields = ("source", "state", "message", "gate_table", "change_table", "rows_table",
              "errors_link", "version", "created_by", "received_at", "finished_at",
              "decided_by", "decided_at", "decision_reason", "dry_run", "origin", "file_name",
              "file_sha256", "size_bytes", "staged_purged_at", "oneroster_version", "rule_set",
              "timings", "progress")
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return request.user.has_perm("roster.add_importrun")

    def has_view_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return request.user.has_perm("roster.view_importrun")

    @admin.display(description="state", ordering="state")
    def state_badge(self, run: ImportRun) -> str:
        if run.state in (ImportState.VALIDATING, ImportState.APPLYING) and run.progress:
            return f"{run.state} ({run.progress.get('phase', '')} {run.progress.get('rows', '')})"
        return run.get_state_display()

    @admin.display(description="rows")
    def rows(self, run: ImportRun) -> int:
        return sum((run.counts or {}).get("rows", {}).values())

    @admin.display(description="changes")
    def change_summary(self, run: ImportRun) -> str:
        c = run.changes or {}
        return f"+{c.get('added', 0)} ~{c.get('updated', 0)} -{c.get('deleted', 0)}" if c else ""

    # --- the run page: tables a person reads, not JSON -----------------------------------------
    @admin.display(description="what tripped the quality gates")
    def gate_table(self, run: ImportRun) -> str:
        trips = run.gate_report or []
        if not trips:
            return "-"
        return _table(("entity", "what tripped", "baseline", "proposed", "would delete"), [
            (t.get("entity"), t.get("summary") or t.get("rule"), t.get("baseline"),
             t.get("proposed"), t.get("deleted"))
            for t in trips
        ])

    @admin.display(description="changes (added / updated / deleted)")
    def change_table(self, run: ImportRun) -> str:
        by_entity = (run.changes or {}).get("by_entity") or {}
        if not by_entity:
            return "-"
        return _table(("entity", "added", "updated", "deleted", "stale"), [
            (entity, c.get("added", 0), c.get("updated", 0), c.get("deleted", 0),
             c.get("stale", 0))
            for entity, c in by_entity.items()
        ])

    @admin.display(description="rows in the file")
    def rows_table(self, run: ImportRun) -> str:
        counts = run.counts or {}
        rows, modes = counts.get("rows") or {}, counts.get("modes") or {}
        if not rows:
            return "-"
        return _table(("file", "mode", "rows"),
                      [(entity, modes.get(entity, ""), n) for entity, n in rows.items()])

    @admin.display(description="errors")
    def errors_link(self, run: ImportRun) -> str:
        if not run.error_count:
            return "0"
        url = reverse("admin:roster_importrunerror_changelist") + f"?run__id__exact={run.pk}"
        return format_html('<a href="{}">{} errors</a>', url, run.error_count)

    # --- upload: stage encrypted, hand the run to a worker -------------------------------------
    def get_urls(self):  # type: ignore[no-untyped-def]
        extra = [
            path("upload/", self.admin_site.admin_view(self.upload_view), name="roster_upload"),
            path("<int:run_id>/reject/", self.admin_site.admin_view(self.reject_view),
                 name="roster_importrun_reject"),
        ]
        return extra + super().get_urls()

    def add_view(self, request, form_url="", extra_context=None):  # type: ignore[no-untyped-def]
        return HttpResponseRedirect(reverse("admin:roster_upload"))

    def upload_view(self, request):  # type: ignore[no-untyped-def]
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            run = services.import_run_create(
                src=upload, file_name=upload.name, source=form.cleaned_data["source"],
                actor=request.user, dry_run=form.cleaned_data["dry_run"],
                origin=ImportOrigin.ADMIN,
            )
            transaction.on_commit(lambda: tasks.import_run.delay(run.pk))
            messages.success(request, f"Import #{run.pk} received; it is being processed.")
            return HttpResponseRedirect(reverse("admin:roster_importrun_change", args=[run.pk]))
        context = {**self.admin_site.each_context(request), "form": form,
                   "title": "Upload a OneRoster feed", "opts": self.model._meta}
        return TemplateResponse(request, "admin/roster/form.html", context)

    # --- holds ---------------------------------------------------------------------------------
    @admin.action(description="Approve the selected held imports (apply them)",
                  permissions=["approve"])
    def approve_held(self, request, queryset):  # type: ignore[no-untyped-def]
        for run in queryset.filter(state=ImportState.HELD):
            try:
                services.import_run_approve(run=run, actor=request.user, process=False)
            except (ValueError, PermissionDenied) as exc:
                messages.error(request, f"#{run.pk}: {exc}")
                continue
            transaction.on_commit(lambda pk=run.pk: tasks.import_run.delay(pk, approved=True))
            messages.success(request, f"Import #{run.pk} approved; it is being applied.")

    def has_approve_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return request.user.has_perm(services.PERMISSION_APPROVE)

    def reject_view(self, request, run_id: int):  # type: ignore[no-untyped-def]
        run = get_object_or_404(ImportRun, pk=run_id)
        if not self.has_approve_permission(request):
            raise PermissionDenied
        form = RejectForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                services.import_run_reject(run=run, actor=request.user,
                                           reason=form.cleaned_data["reason"])
            except ValueError as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, f"Import #{run.pk} rejected.")
            return HttpResponseRedirect(reverse("admin:roster_importrun_change", args=[run.pk]))
        context = {**self.admin_site.each_context(request), "form": form,
                   "title": f"Reject held import #{run.pk}", "opts": self.model._meta,
                   "details": run.message}
        return TemplateResponse(request, "admin/roster/form.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):  # type: ignore[no-untyped-def]
        extra_context = extra_context or {}
        run = ImportRun.objects.filter(pk=object_id).first()
        if run and run.state == ImportState.HELD and self.has_approve_permission(request):
            extra_context["reject_url"] = reverse("admin:roster_importrun_reject", args=[run.pk])
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(ImportRunError)
class ImportRunErrorAdmin(ReadOnlyAdmin):
    """The row-level error report, paginated; filter by run from the run's page."""

    list_display = ("run", "file", "line", "column", "code", "message")
    list_filter = ("code", "file")
    search_fields = ("message",)
    list_per_page = 100
    list_select_related = ("run",)

    def has_view_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return request.user.has_perm("roster.view_importrun")


@admin.register(RosterVersion)
class RosterVersionAdmin(ReadOnlyAdmin):
    list_display = ("number", "source", "kind", "rolled_back_to", "added", "updated", "deleted",
                    "created_at")
    list_filter = ("source", "kind")
    list_select_related = ("source",)
    readonly_fields = ("number", "source", "kind", "import_run", "rolled_back_to", "added",
                       "updated", "deleted", "change_summary", "created_by", "created_at")
    exclude = ("by_entity",)

    @admin.display(description="changes by entity")
    def change_summary(self, version: RosterVersion) -> str:
        return format_html("<pre>{}</pre>", json.dumps(version.by_entity, indent=2))


class RuleSetForm(forms.ModelForm):
    rules = forms.JSONField(initial=DEFAULT_RULES.to_dict)

    class Meta:
        model = MappingRuleSet
        fields = ("source", "rules", "comment")

    def clean_rules(self) -> dict:
        from apps.roster.ingest.mapping import MappingRules

        rules = self.cleaned_data["rules"]
        try:
            MappingRules.from_dict(rules)
        except (TypeError, ValueError) as exc:
            raise forms.ValidationError(str(exc)) from exc
        return rules


@admin.register(MappingRuleSet)
class MappingRuleSetAdmin(admin.ModelAdmin):
    """Rule sets are versions: adding one creates the next version (audited); none is edited."""

    list_display = ("source", "version", "comment", "created_by", "created_at")
    list_filter = ("source",)
    list_select_related = ("source", "created_by")
    form = RuleSetForm

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        if obj is not None:
            return ("source", "version", "rules", "comment", "created_by", "created_at")
        return ()

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def save_model(self, request, obj, form, change) -> None:  # type: ignore[no-untyped-def]
        created = services.mapping_rule_set_create(
            source=form.cleaned_data["source"], rules=form.cleaned_data["rules"],
            actor=request.user, comment=form.cleaned_data.get("comment", ""),
        )
        obj.pk = created.pk
        obj.version = created.version
