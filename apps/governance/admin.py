"""Governance admin. Each half of the app keeps its pages in its own module:

- admin_exclusions: exclusions and overrides (safeguarding officers only);
- admin_access: the effective-access page per integration, with "suspend now";
- scope requests, approvals and classification (see below, when present).
"""

from apps.governance import admin_access, admin_exclusions  # noqa: F401  (registers)
from apps.governance import admin_classification, admin_requests  # noqa: F401,E402  (registers)
