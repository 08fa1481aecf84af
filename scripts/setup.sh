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
# CI's machines) every process then compiled TensorFlow again: 24 of the 36 s of `import
# tensorflow` (10 s with the bytecode), paid by each CLI call, test worker and child process.
"${uv[@]}" sync --frozen --extra cpu --compile-bytecode "$@"
