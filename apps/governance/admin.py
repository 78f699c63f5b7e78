"""Governance admin. Each half of the app keeps its pages in its own module:

- admin_requests, admin_classification: scope requests, approvals and classification;
- admin_exclusions: exclusions and overrides (safeguarding officers only);
- admin_access: the effective-access page per integration, with "suspend now".
"""

from apps.governance import (  # noqa: F401  (importing registers the pages)
    admin_access,
    admin_classification,
    admin_exclusions,
    admin_requests,
)
