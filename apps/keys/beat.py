"""The keys app's periodic tasks, merged into CELERY_BEAT_SCHEDULE by portal/settings.py.

Kept free of Django imports so settings can read it.
"""

from __future__ import annotations

from celery.schedules import crontab

BEAT_SCHEDULE = {
    # Checks daily; rotates only when the active LTI key is older than its maximum age.
    "keys.rotate_lti_signing_keys_if_due": {
        "task": "keys.rotate_lti_signing_keys_if_due",
        "schedule": crontab(hour=3, minute=41),
    },
}
