"""`python -m cityseg.service.healthcheck`: exit 0 when the local service's /health says ok.

The container's HEALTHCHECK: the standard library only, so that the lean image needs no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def check(port: int, timeout_s: float = 3.0) -> bool:
    """True when http://127.0.0.1:`port`/health answers 200 within `timeout_s`."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout_s) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


if __name__ == "__main__":
    sys.exit(0 if check(int(os.environ.get("CITYSEG_PORT", "8000"))) else 1)
