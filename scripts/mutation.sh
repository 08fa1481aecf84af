#!/usr/bin/env bash
# Mutation testing of the pure modules (labels, resize/letterbox, split, metrics, export parity,
# upload limits) against their fast tests: `bash scripts/mutation.sh` (CPU-heavy, about an hour
# on 2 busy cores; reruns only re-test functions that changed). Not part of the default suite.
# The modules and tests are listed in pyproject.toml under [tool.mutmut]; results stay in
# mutants/ (git-ignored). Ends with killed / total per module; survivors: `.venv/bin/mutmut results`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/mutmut ] || bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2 CUDA_VISIBLE_DEVICES=""
nice -n 5 .venv/bin/mutmut run --max-children "${MUTMUT_JOBS:-2}" "$@" || true
.venv/bin/mutmut export-cicd-stats >/dev/null
.venv/bin/python scripts/mutation_summary.py
