"""Mapping rules: how a source's vocabulary is translated into the canonical model.

A rule set is plain, JSON-able data so that it can be stored, versioned and reviewed (APPLY's
``MappingRuleSet`` keeps one per version; the parser only applies them). Rules run before
validation, so a mapped value is then checked against the canonical vocabulary like any other:
a rule can translate ``ext:HeadOfYear`` into ``teacher`` but cannot smuggle in an invalid term.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

RULES_FORMAT = 1


@dataclass(frozen=True)
class MappingRules:
    # OneRoster 1.1 users.role -> 1.2 roles.role (1.1 has one "administrator" role).
    role_map_v11: dict[str, str] = field(default_factory=dict)
    # Any version: roles.role value -> canonical role (SIS-specific ext: roles, misspellings).
    role_map: dict[str, str] = field(default_factory=dict)
    # Any version: enrollments.role value -> canonical enrollment role.
    enrollment_role_map: dict[str, str] = field(default_factory=dict)
    # Any version: status value -> canonical status (a SIS quirk such as "deleted").
    status_map: dict[str, str] = field(default_factory=dict)
    # OneRoster 1.1 only: legacy status values (1.0/1.1 allowed "inactive").
    status_map_v11: dict[str, str] = field(default_factory=dict)
    # 1.1 users carry orgSourcedIds but no primary org: take the first one as the primary org
    # (users.primaryOrgSourcedId, and roleType primary for its role row).
    v11_first_org_is_primary: bool = True

    @classmethod
    def from_dict(cls, data: dict) -> MappingRules:
        """Build rules from stored JSON; unknown keys are refused so a typo cannot pass unseen."""
        data = dict(data)
        data.pop("format", None)
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown mapping rule keys: {sorted(unknown)}")
        for key, value in data.items():
            is_map = key.endswith("_map") or key.endswith("_map_v11")
            if is_map and not (
                isinstance(value, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
            ):
                raise ValueError(f"{key} must map strings to strings")
        return cls(**data)

    def to_dict(self) -> dict:
        return {"format": RULES_FORMAT, **asdict(self)}

    def roles_for(self, version: str) -> dict[str, str]:
        """The role translation for roles rows read from a feed of ``version``."""
        if version == "1.1":
            return {**self.role_map_v11, **self.role_map}
        return dict(self.role_map)

    def statuses_for(self, version: str) -> dict[str, str]:
        if version == "1.1":
            return {**self.status_map_v11, **self.status_map}
        return dict(self.status_map)


DEFAULT_RULES = MappingRules(
    role_map_v11={
        # 1.1 "administrator" is a school-level administrator unless a rule set says otherwise
        # (a trust whose SIS uses it for central staff maps it to districtAdministrator).
        "administrator": "siteAdministrator",
    },
    status_map_v11={"inactive": "tobedeleted"},
)
