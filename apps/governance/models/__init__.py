"""Governance models, one module per concern.

classification and requests: vendors' scope requests and approvals (helper GA);
exclusions: exclusions and overrides (helper GB). Imported here so Django sees one app.
"""

from importlib.util import find_spec

from .classification import *  # noqa: F401,F403
from .requests import *  # noqa: F401,F403

# Exclusions and overrides land in their own module; imported when present so that the
# two halves of the app can be built in parallel.
if find_spec(f"{__name__}.exclusions") is not None:
    from .exclusions import *  # noqa: F401,F403
