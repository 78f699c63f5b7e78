"""Governance models, one module per concern: classification, scope requests and
approvals, exclusions and overrides (with pseudonym keys), and the release generations that
invalidate cached releases. Imported here so Django sees one app."""

from .classification import *  # noqa: F401,F403
from .exclusions import *  # noqa: F401,F403
from .generation import *  # noqa: F401,F403
from .requests import *  # noqa: F401,F403
