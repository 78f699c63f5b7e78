"""Generations that tell a cached release it is stale.

A release (``apps.governance.release``) is rebuilt only when something it reads changed.
Database triggers (migration 0004) stamp one of these rows with a fresh value from a
sequence on every write to a table the release reads, in the writer's own transaction:

* ``governance``: vendors, integrations, scope requests, classification reviews,
  exclusions, overrides, pseudonym keys, and a data key being destroyed;
* ``orgs``: the canonical orgs (the org scope's descendants).

Two rows, so that a long roster import holding the ``orgs`` row locked never makes a
safeguarding officer's exclusion wait for it. Values come from a sequence, which is never
rolled back, so a value seen inside a transaction that later aborts is never seen again:
a release built from uncommitted state can never be mistaken for a committed one.
"""

from __future__ import annotations

from django.db import models

__all__ = ["ReleaseGeneration"]


class ReleaseGeneration(models.Model):
    name = models.CharField(max_length=20, primary_key=True)
    value = models.BigIntegerField()

    class Meta:
        verbose_name = "release generation"

    def __str__(self) -> str:
        return f"{self.name}={self.value}"
