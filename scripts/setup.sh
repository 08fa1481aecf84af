#!/usr/bin/env bash
# Set up a fresh machine that has Python 3.11: uv, then the locked environment in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
uv sync --frozen --extra cpu "$@"
