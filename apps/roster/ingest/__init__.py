"""Roster ingest pipeline: parse (this package's parse/zipsafe/manifest/fields/mapping modules)
then stage, validate in SQL, gate and apply (APPLY's modules).

Public parsing API::

    from apps.roster.ingest import open_feed, MappingRules, DEFAULT_RULES, ZipLimits, IngestError
"""
from apps.roster.ingest.errors import IngestError
from apps.roster.ingest.mapping import DEFAULT_RULES, MappingRules
from apps.roster.ingest.parse import FatalFeedError, Feed, open_feed
from apps.roster.ingest.zipsafe import ZipLimits

__all__ = [
    "DEFAULT_RULES",
    "FatalFeedError",
    "Feed",
    "IngestError",
    "MappingRules",
    "ZipLimits",
    "open_feed",
]
