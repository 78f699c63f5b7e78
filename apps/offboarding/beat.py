"""Offboarding schedules for celery beat (merged into CELERY_BEAT_SCHEDULE by settings)."""

from __future__ import annotations

from celery.schedules import crontab

BEAT_SCHEDULE = {
    # Contracts that ended yesterday open their offboarding before the school day starts.
    "offboarding.contracts_ended": {
        "task": "offboarding.contracts_ended",
        "schedule": crontab(minute=5, hour=2),
    },
    "offboarding.deletion_requests_chase": {
        "task": "offboarding.deletion_requests_chase",
        "schedule": crontab(minute=35, hour=7),
    },
    # The 72-hour notification clock of open incidents: warned a day ahead, critical after.
    "offboarding.incidents_clock_check": {
        "task": "offboarding.incidents_clock_check",
        "schedule": 900.0,
    },
    # A vendor that keeps calling after it was offboarded should be seen within minutes.
    "offboarding.access_after_close_check": {
        "task": "offboarding.access_after_close_check",
        "schedule": 300.0,
    },
}
