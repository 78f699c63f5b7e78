"""The canonical roster: OneRoster 1.2 shaped, versioned, and owned by its source.

Every canonical table holds the full history of its entity. A row is never
updated in content: a change closes the current row (``valid_to_version``) and
inserts the new one (``valid_from_version``), so

* the current state is ``valid_to_version IS NULL``,
* the state as of version N is ``valid_from_version <= N AND (valid_to_version IS NULL
  OR valid_to_version > N)``,
* the changes between N and M are the rows whose ``valid_from_version`` or
  ``valid_to_version`` falls in ``(N, M]``.

``tobedeleted`` is represented by closing the row, with no status column: a record
is active exactly while it has a current row, and a record that re-appears gets a
new current row (its history stays). Each row belongs to one ``Source`` and a
source only ever closes rows it owns (the partial unique index makes "one current
row per source and sourcedId" a database fact).

The SIS password columns of users and userProfiles are deliberately not kept
(data minimisation): the hub never hands a password to anyone.

The import machinery (runs, errors, versions, outbox, rule sets, gates) lives
below the entities.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q

# --------------------------------------------------------------------------------------------
# Sources and versions
# --------------------------------------------------------------------------------------------


class SourceKind(models.TextChoices):
    SIS_FEED = "sis_feed", "SIS feed"
    INTEGRATION = "integration", "Integration (writes grades)"


class Source(models.Model):
    """Who owns a canonical row: a SIS feed now, integrations that write grades later."""

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=SourceKind.choices, default=SourceKind.SIS_FEED)
    description = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RosterVersion(models.Model):
    """One applied change set. ``number`` is monotonic for the whole hub (no gaps in
    commit order: it is allocated under a hub-wide lock held until commit)."""

    number = models.PositiveIntegerField(unique=True)
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="versions")
    import_run = models.OneToOneField(
        "ImportRun", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # What made it: an import, or a rollback to ``rolled_back_to``.
    kind = models.CharField(max_length=20, default="import")
    rolled_back_to = models.PositiveIntegerField(null=True, blank=True)
    added = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    deleted = models.PositiveIntegerField(default=0)
    # {"users": {"added": 1, "updated": 0, "deleted": 2, "total": 120}, ...}
    by_entity = models.JSONField(default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"v{self.number} ({self.source})"


class RosterOutbox(models.Model):
    """Written in the same transaction as its version, for deliveries to subscribe to."""

    version = models.OneToOneField(RosterVersion, on_delete=models.PROTECT, related_name="outbox")
    topic = models.CharField(max_length=100, default="roster.version_applied")
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["id"], name="roster_outbox_pending", condition=Q(processed_at__isnull=True)
            )
        ]

    def __str__(self) -> str:
        return f"{self.topic} v{self.version_id}"


# --------------------------------------------------------------------------------------------
# Canonical entities
# --------------------------------------------------------------------------------------------


# sourcedIds compare and sort byte by byte, whatever the database's collation: one index
# then serves both lookups and the REST order (which is byte-wise), and building it sorts
# with memcmp. Tables elsewhere holding sourcedIds use the same collation, so that their
# indexes serve joins with these columns.
SOURCED_ID_COLLATION = "C"


def _sid(**kwargs) -> models.CharField:  # type: ignore[no-untyped-def]
    """A sourcedId column (the record's own or a reference)."""
    return models.CharField(max_length=255, db_collation=SOURCED_ID_COLLATION, **kwargs)


def _texts() -> ArrayField:
    return ArrayField(models.TextField(), null=True, blank=True)


def _sids() -> ArrayField:
    """A list of sourcedId references, compared byte by byte like every sourcedId."""
    return ArrayField(models.TextField(db_collation=SOURCED_ID_COLLATION), null=True,
                      blank=True)


class CanonicalRow(models.Model):
    """Columns every canonical table shares: identity, ownership, validity, content hash."""

    # No index of its own: the (source, sourced_id) and (source, version) indexes lead
    # with it, and every extra index slows the bulk insert. No database constraint either:
    # a per-row foreign key check would cost as much as the insert itself, sources are
    # never deleted (PROTECT), and only the pipeline writes these tables.
    source = models.ForeignKey(
        Source, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    sourced_id = _sid()
    # The source's own clock, kept so a delta never lets an older change overwrite a
    # newer one. Not part of the content hash.
    date_last_modified = models.DateTimeField(null=True, blank=True)
    # md5 of the canonical content columns (status and dateLastModified excluded).
    content_hash = models.BinaryField()
    valid_from_version = models.PositiveIntegerField()
    valid_to_version = models.PositiveIntegerField(null=True, blank=True)

    # The entity name used by the CSV binding and schema.py ("users").
    entity: str = ""

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.sourced_id


def _canonical_constraints(prefix: str) -> tuple[list, list]:
    """The partial unique index (one current row per source and sourcedId) and the
    validity indexes that make "current", "as of N" and "changes since N" cheap.

    The unique index leads with the sourcedId, so it also serves every lookup of a
    current record by sourcedId alone (references, releases, REST details): one index
    where there were two, each built over every row of a first import and written for
    every row a change inserts.
    """
    constraints = [
        models.UniqueConstraint(
            fields=["sourced_id", "source"],
            condition=Q(valid_to_version__isnull=True),
            name=f"{prefix}_one_current",
        )
    ]
    indexes = [
        models.Index(fields=["source", "valid_from_version"], name=f"{prefix}_from"),
        models.Index(fields=["source", "valid_to_version"], name=f"{prefix}_to",
                     condition=Q(valid_to_version__isnull=False)),
    ]
    return constraints, indexes


class Org(CanonicalRow):
    entity = "orgs"
    name = models.TextField()
    type = models.TextField()
    identifier = models.TextField(null=True, blank=True)
    parent_sourced_id = _sid(null=True, blank=True)

    class Meta:
        constraints, indexes = _canonical_constraints("roster_org")


class AcademicSession(CanonicalRow):
    entity = "academicSessions"
    title = models.TextField()
    type = models.TextField()
    start_date = models.DateField()
    end_date = models.DateField()
    parent_sourced_id = _sid(null=True, blank=True)
    school_year = models.IntegerField()

    class Meta:
        constraints, indexes = _canonical_constraints("roster_session")


class Course(CanonicalRow):
    entity = "courses"
    school_year_sourced_id = _sid(null=True, blank=True)
    title = models.TextField()
    course_code = models.TextField(null=True, blank=True)
    grades = _texts()
    org_sourced_id = _sid()
    subjects = _texts()
    subject_codes = _texts()

    class Meta:
        constraints, indexes = _canonical_constraints("roster_course")


class Class(CanonicalRow):
    entity = "classes"
    title = models.TextField()
    grades = _texts()
    course_sourced_id = _sid()
    class_code = models.TextField(null=True, blank=True)
    class_type = models.TextField()
    location = models.TextField(null=True, blank=True)
    school_sourced_id = _sid()
    term_sourced_ids = ArrayField(models.TextField())
    subjects = _texts()
    subject_codes = _texts()
    periods = _texts()

    class Meta:
        verbose_name_plural = "classes"
        constraints, indexes = _canonical_constraints("roster_class")


class User(CanonicalRow):
    entity = "users"
    enabled_user = models.BooleanField()
    username = models.TextField()
    user_ids = _texts()
    given_name = models.TextField()
    family_name = models.TextField()
    middle_name = models.TextField(null=True, blank=True)
    identifier = models.TextField(null=True, blank=True)
    email = models.TextField(null=True, blank=True)
    sms = models.TextField(null=True, blank=True)
    phone = models.TextField(null=True, blank=True)
    agent_sourced_ids = _sids()
    grades = _texts()
    user_master_identifier = models.TextField(null=True, blank=True)
    preferred_given_name = models.TextField(null=True, blank=True)
    preferred_middle_name = models.TextField(null=True, blank=True)
    preferred_family_name = models.TextField(null=True, blank=True)
    primary_org_sourced_id = _sid(null=True, blank=True)
    pronouns = models.TextField(null=True, blank=True)

    class Meta:
        verbose_name = "roster user"
        constraints, indexes = _canonical_constraints("roster_user")
        # Which current users name these agents (guardians): a delta that removes a
        # guardian checks only the users pointing at it, never every user's list.
        indexes = [*indexes, GinIndex(
            fields=["agent_sourced_ids"], name="roster_user_agents",
            condition=Q(valid_to_version__isnull=True, agent_sourced_ids__isnull=False),
        )]


class Role(CanonicalRow):
    entity = "roles"
    user_sourced_id = _sid()
    role_type = models.TextField()
    role = models.TextField()
    begin_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)
    org_sourced_id = _sid()
    user_profile_sourced_id = _sid(null=True, blank=True)

    class Meta:
        constraints, indexes = _canonical_constraints("roster_role")
        # Roles naming a profile (few): what a delta removing profiles must look at.
        indexes = [*indexes, models.Index(
            fields=["user_profile_sourced_id"], name="roster_role_profile",
            condition=Q(valid_to_version__isnull=True, user_profile_sourced_id__isnull=False),
        )]


class UserProfile(CanonicalRow):
    entity = "userProfiles"
    user_sourced_id = _sid()
    profile_type = models.TextField()
    vendor_id = models.TextField()
    application_id = models.TextField(null=True, blank=True)
    description = models.TextField(null=True, blank=True)
    credential_type = models.TextField()
    username = models.TextField()

    class Meta:
        constraints, indexes = _canonical_constraints("roster_profile")


class Enrollment(CanonicalRow):
    entity = "enrollments"
    class_sourced_id = _sid()
    school_sourced_id = _sid()
    user_sourced_id = _sid()
    role = models.TextField()
    primary = models.BooleanField(null=True, blank=True)
    begin_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)

    class Meta:
        constraints, indexes = _canonical_constraints("roster_enrollment")


class Demographic(CanonicalRow):
    entity = "demographics"
    birth_date = models.DateField(null=True, blank=True)
    sex = models.TextField(null=True, blank=True)
    american_indian_or_alaska_native = models.BooleanField(null=True, blank=True)
    asian = models.BooleanField(null=True, blank=True)
    black_or_african_american = models.BooleanField(null=True, blank=True)
    native_hawaiian_or_other_pacific_islander = models.BooleanField(null=True, blank=True)
    white = models.BooleanField(null=True, blank=True)
    demographic_race_two_or_more_races = models.BooleanField(null=True, blank=True)
    hispanic_or_latino_ethnicity = models.BooleanField(null=True, blank=True)
    country_of_birth_code = models.TextField(null=True, blank=True)
    state_of_birth_abbreviation = models.TextField(null=True, blank=True)
    city_of_birth = models.TextField(null=True, blank=True)
    public_school_residence_status = models.TextField(null=True, blank=True)

    class Meta:
        constraints, indexes = _canonical_constraints("roster_demographic")


class Category(CanonicalRow):
    entity = "categories"
    title = models.TextField()
    weight = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)

    class Meta:
        verbose_name_plural = "categories"
        constraints, indexes = _canonical_constraints("roster_category")


class LineItem(CanonicalRow):
    entity = "lineItems"
    title = models.TextField()
    description = models.TextField(null=True, blank=True)
    assign_date = models.DateField()
    due_date = models.DateField()
    class_sourced_id = _sid()
    category_sourced_id = _sid()
    academic_session_sourced_id = _sid()
    result_value_min = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    result_value_max = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    # 1.1 line items carry no school.
    school_sourced_id = _sid(null=True, blank=True)

    class Meta:
        constraints, indexes = _canonical_constraints("roster_lineitem")


class Result(CanonicalRow):
    entity = "results"
    line_item_sourced_id = _sid()
    student_sourced_id = _sid()
    score_status = models.TextField()
    score = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    score_date = models.DateField()
    comment = models.TextField(null=True, blank=True)
    text_score = models.TextField(null=True, blank=True)
    class_sourced_id = _sid(null=True, blank=True)
    in_progress = models.BooleanField(null=True, blank=True)
    incomplete = models.BooleanField(null=True, blank=True)
    late = models.BooleanField(null=True, blank=True)
    missing = models.BooleanField(null=True, blank=True)

    class Meta:
        constraints, indexes = _canonical_constraints("roster_result")
        # A learner's current results: what a delta removing learners must look at.
        indexes = [*indexes, models.Index(
            fields=["student_sourced_id"], name="roster_result_student",
            condition=Q(valid_to_version__isnull=True),
        )]


class ScoreScale(CanonicalRow):
    entity = "scoreScales"
    title = models.TextField()
    type = models.TextField()
    org_sourced_id = _sid()
    course_sourced_id = _sid()
    class_sourced_id = _sid()
    score_scale_value = ArrayField(models.TextField())

    class Meta:
        constraints, indexes = _canonical_constraints("roster_scorescale")


# entity name (as in the CSV file names) -> canonical model, in dependency order.
CANONICAL_MODELS: dict[str, type[CanonicalRow]] = {
    model.entity: model
    for model in (
        Org, AcademicSession, Course, Class, User, Role, UserProfile, Enrollment, Demographic,
        Category, LineItem, Result, ScoreScale,
    )
}


# --------------------------------------------------------------------------------------------
# Mapping rules and quality gates
# --------------------------------------------------------------------------------------------


class MappingRuleSet(models.Model):
    """A version of the rules translating one source's semantics into the canonical model.

    Immutable: changing the rules means creating the next version (audited); an
    import run records the version it used.
    """

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="rule_sets")
    version = models.PositiveIntegerField()
    rules = models.JSONField()
    comment = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["source", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["source", "version"], name="roster_ruleset_version")
        ]

    def __str__(self) -> str:
        return f"{self.source} rules v{self.version}"


class QualityGate(models.Model):
    """Thresholds for one source (defaults from the issue). The baseline is the per-org
    counts of the source's current state, i.e. its last applied version (``GateBaseline``
    keeps it between imports); what tripped is kept on the run."""

    source = models.OneToOneField(Source, on_delete=models.CASCADE, related_name="quality_gate")
    enabled = models.BooleanField(default=True)
    max_change_percent = models.DecimalField(max_digits=5, decimal_places=2, default=10)
    max_delete_percent = models.DecimalField(max_digits=5, decimal_places=2, default=5)
    min_records = models.PositiveIntegerField(default=25)
    hold_when_learners_double = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"quality gate for {self.source}"


class GateBaseline(models.Model):
    """A gated source's current row counts per entity, org and kind, as of one of its
    versions: what the quality gates compare the next import against.

    Counting them afresh reads every current row of the source (a fifth of a second for a
    district's enrolments, at every import). Each import under a gate stores the counts it
    leaves (the baseline plus what it added, less what it removed), in the transaction
    that applies it. Any other new version of the source (a rollback, an approved hold)
    makes the stored counts stale by their version number, and the next import counts
    afresh: a stale baseline is never used.
    """

    source = models.OneToOneField(Source, on_delete=models.CASCADE, primary_key=True,
                                  related_name="gate_baseline")
    version = models.PositiveIntegerField()
    # {entity: [[org, kind, count], ...]}
    counts = models.JSONField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"gate baseline of {self.source} at version {self.version}"


# --------------------------------------------------------------------------------------------
# Import runs
# --------------------------------------------------------------------------------------------


class ImportState(models.TextChoices):
    RECEIVED = "received"
    VALIDATING = "validating"
    REJECTED = "rejected"
    HELD = "held"
    APPLYING = "applying"
    APPLIED = "applied"
    NO_CHANGES = "no_changes", "no changes"
    FAILED = "failed"


# Which state may follow which; anything else is a bug and raises.
IMPORT_TRANSITIONS: dict[str, set[str]] = {
    ImportState.RECEIVED: {ImportState.VALIDATING, ImportState.FAILED},
    ImportState.VALIDATING: {
        ImportState.REJECTED, ImportState.HELD, ImportState.APPLYING, ImportState.APPLIED,
        ImportState.NO_CHANGES, ImportState.FAILED,
    },
    # approval re-reads the staged file: held -> validating -> applying -> applied
    ImportState.HELD: {ImportState.VALIDATING, ImportState.REJECTED, ImportState.FAILED},
    ImportState.APPLYING: {
        ImportState.APPLIED, ImportState.NO_CHANGES, ImportState.REJECTED, ImportState.HELD,
        ImportState.FAILED,
    },
    ImportState.REJECTED: set(),
    ImportState.APPLIED: set(),
    ImportState.NO_CHANGES: set(),
    ImportState.FAILED: set(),
}
FINAL_STATES = frozenset(s for s, nxt in IMPORT_TRANSITIONS.items() if not nxt)


class ImportOrigin(models.TextChoices):
    CLI = "cli", "command line"
    ADMIN = "admin", "admin upload"
    DROP_FOLDER = "drop_folder", "drop folder"
    API = "api", "API"


class ImportRun(models.Model):
    """One file going through the pipeline; the record the admin, CLI and task share."""

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="import_runs")
    state = models.CharField(
        max_length=20, choices=ImportState.choices, default=ImportState.RECEIVED
    )
    dry_run = models.BooleanField(default=False)
    origin = models.CharField(max_length=20, choices=ImportOrigin.choices, default=ImportOrigin.CLI)
    file_name = models.CharField(max_length=255)
    file_sha256 = models.CharField(max_length=64, db_index=True)
    size_bytes = models.BigIntegerField(default=0)
    # The encrypted staged copy (never offered for download); emptied by the purge.
    staged_path = models.CharField(max_length=500, blank=True)
    staged_purged_at = models.DateTimeField(null=True, blank=True)
    oneroster_version = models.CharField(max_length=10, blank=True)
    rule_set = models.ForeignKey(
        MappingRuleSet, null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    # rows read per entity, mode per entity, etc.
    counts = models.JSONField(default=dict)
    # {"added", "updated", "deleted", "by_entity": {...}}
    changes = models.JSONField(default=dict)
    timings = models.JSONField(default=dict)
    error_count = models.PositiveIntegerField(default=0)
    gate_report = models.JSONField(default=list, blank=True)
    version = models.ForeignKey(
        RosterVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    message = models.TextField(blank=True)
    # progress for the admin: phase and percentage
    progress = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        permissions = [("approve_held_import", "Can approve or reject a held roster import")]
        indexes = [models.Index(fields=["source", "state"], name="roster_run_source_state")]

    def __str__(self) -> str:
        return f"import #{self.pk} {self.file_name} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


class ImportRunError(models.Model):
    """A row-level problem (named so as not to shadow Python's ImportError)."""

    run = models.ForeignKey(ImportRun, on_delete=models.CASCADE, related_name="errors")
    file = models.CharField(max_length=100, blank=True)
    line = models.PositiveIntegerField(null=True, blank=True)
    column = models.CharField(max_length=100, blank=True)
    code = models.CharField(max_length=50)
    message = models.TextField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.code}"

    def as_dict(self) -> dict:
        return {
            "file": self.file, "line": self.line, "column": self.column,
            "code": self.code, "message": self.message,
        }
