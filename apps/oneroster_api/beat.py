"""The OneRoster provider's periodic tasks, merged into CELERY_BEAT_SCHEDULE by
portal/settings.py. Kept free of Django imports so settings can read it."""

from __future__ import annotations

BEAT_SCHEDULE = {
    # Pending disclosures reach the ledger within seconds of the request that made them.
    "oneroster.disclosures_flush": {
        "task": "oneroster.disclosures_flush",
        "schedule": 10.0,
        "options": {"expires": 10},
    },
}
