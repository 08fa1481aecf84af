#!/usr/bin/env bash
# Set up a fresh machine that has Python 3.11: uv, then the locked environment in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v uv >/dev/null 2>&1; then
  uv=(uv)
else
  python3 -m pip install --quiet uv
  uv=(python3 -m uv)  # works even where a fresh console script is not yet on PATH
fi
# --compile-bytecode: uv installs sources only, and where PYTHONDONTWRITEBYTECODE is set (this
# CI's machines) every process then compiled TensorFlow again: `import tensorflow` took 27.5 s
# instead of 9.2-9.8 (quiet cores, 2026-11-30), paid by each CLI call, test worker and child.
"${uv[@]}" sync --frozen --extra cpu --compile-bytecode "$@"
