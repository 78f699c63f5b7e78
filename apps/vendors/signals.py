"""Governance tells the spokes to clean up; it never reaches into them.

``integration_credentials_revoke`` is sent (inside the caller's transaction) when an
integration is being offboarded. Each spoke that issues credentials for an integration
(OAuth clients and tokens, LTI registrations and tokens, delivery destinations and links)
connects a receiver in its own ``AppConfig.ready`` and revokes what it issued, recording
what it did. Receivers return a short summary dict, e.g. ``{"oauth_clients": 1,
"tokens": 3}``; the sender keeps the summaries as evidence (``send`` returns them).

Arguments: ``integration`` (an ``Integration``), ``actor`` (a user or ``None`` for the
system), ``reason`` (text kept in the audit log).
"""

from __future__ import annotations

from django.dispatch import Signal

integration_credentials_revoke = Signal()
