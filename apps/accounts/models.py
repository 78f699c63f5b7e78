"""Portal users linked to the roster: teachers and students sign in with ordinary (non-staff)
Django accounts, and each is linked to the one roster person they are.

The link is by sourcedId text, like every reference into the canonical roster: roster rows are
versioned, so the person's current row is looked up at the moment of use (a pupil who left,
or whose account the SIS disabled, stops being able to launch tools at once).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RosterLink(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="roster_link"
    )
    roster_user_sourced_id = models.CharField(
        max_length=255, unique=True, help_text="sourcedId of the roster user this account is.",
        db_collation="C",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "roster link"

    def __str__(self) -> str:
        return f"{self.user} -> {self.roster_user_sourced_id}"
