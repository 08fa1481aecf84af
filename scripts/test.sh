#!/usr/bin/env bash
# Set up everything the tests need (locked env + Debian's headless Chromium), lint, test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1; then
  # The browser end-to-end test drives Debian's Chromium (Playwright's own download cannot work here).
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
.venv/bin/ruff check src tests examples scripts
.venv/bin/ruff format --check src tests examples scripts
.venv/bin/mypy
.venv/bin/python -m pytest -n 2 --durations=15 "$@"  # the slowest 15: where the 10-minute budget goes
