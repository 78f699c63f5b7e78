"""Django's PostgreSQL backend, trusting a connection that finished a request cleanly moments
ago instead of pinging it at the start of the next one.

With ``CONN_HEALTH_CHECKS`` Django sends ``SELECT 1`` before the first statement of every
request on a persistent connection. Vendors' requests are small (a score, a token, a page of
members: five to ten statements), so that ping was a tenth of their round trips to the
database. A connection that served a request without errors less than
``TRUSTED_FOR_SECONDS`` ago is used as it is; one that sat idle longer, or whose last
request failed, is still checked (and replaced if it is dead) as before. The price: if the
database restarts within those seconds, the first request on each worker fails once, and
Django then replaces that connection as it always does after an error.
"""

from __future__ import annotations

import math
import time

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    TRUSTED_FOR_SECONDS = 5.0

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.clean_at = -math.inf  # when a request last finished with it, cleanly
        self.used = False  # since the last start or end of a request

    def close_if_unusable_or_obsolete(self) -> None:
        # Called when a request starts and when it finishes; ``used`` is set by every
        # cursor in between, so it is true at the end of a request that used it.
        used_cleanly = self.used and not self.errors_occurred
        self.used = False
        super().close_if_unusable_or_obsolete()
        if used_cleanly and self.connection is not None:
            self.clean_at = time.monotonic()

    def close_if_health_check_failed(self) -> None:
        # Django calls this before every cursor, and pings once per request.
        self.used = True
        if (self.connection is not None and not self.health_check_done
                and time.monotonic() - self.clean_at < self.TRUSTED_FOR_SECONDS):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
