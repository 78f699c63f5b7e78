"""Container healthcheck: GET a local path as the public host would; exit 0 only on HTTP 200.

    python docker/healthcheck.py /readyz     (default /healthz)

The Host header is the public URL's host, so it passes ALLOWED_HOSTS whatever the operator
set; /healthz and /readyz are exempt from the HTTPS redirect.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit


def main(path: str) -> int:
    port = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000").rsplit(":", 1)[-1]
    public = urlsplit(os.environ.get("INTERCHANGE_PUBLIC_URL", "http://127.0.0.1:8000"))
    request = urllib.request.Request(  # noqa: S310 - a fixed loopback http URL
        f"http://127.0.0.1:{port}{path}", headers={"Host": public.netloc or "127.0.0.1"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/healthz"))
