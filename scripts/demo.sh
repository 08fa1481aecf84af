#!/usr/bin/env bash
# Set up a fresh machine and run the main job: synthetic cities -> split -> training ->
# evaluation -> the service and its web page (http://127.0.0.1:8000/). Extra arguments go
# to `cityseg demo` (see `uv run cityseg demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/cityseg demo "$@"
