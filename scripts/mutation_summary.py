"""Print killed / total mutants per module from mutmut's result files (after `mutmut run`).

A mutant counts as killed when a test failed on it or it hung past mutmut's timeout; "no
tests" (no selected test reaches the function) and survivors count against the rate.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

DETECTED = ("killed", "timeout")


def main(root: Path = Path("mutants")) -> int:
    """Summarise every `mutants/**/*.py.meta` file; return 1 if none is found."""
    totals: dict[str, Counter[str]] = {}
    for meta in sorted(root.rglob("*.py.meta")):
        module = meta.relative_to(root).as_posix().removesuffix(".meta")
        codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        totals[module] = Counter(status_by_exit_code[code] for code in codes.values())
    if not totals:
        print("no mutmut results under mutants/: run `bash scripts/mutation.sh` first")
        return 1
    grand: Counter[str] = Counter()
    print(f"{'module':40} {'killed':>6} {'total':>6} {'rate':>6}  other")
    for module, count in totals.items():
        grand += count
        _row(module, count)
    _row("all", grand)
    return 0


def _row(name: str, count: Counter[str]) -> None:
    total = sum(count.values())
    killed = sum(count[s] for s in DETECTED)
    other = ", ".join(f"{k} {v}" for k, v in sorted(count.items()) if k != "killed")
    print(f"{name:40} {killed:6d} {total:6d} {killed / max(total, 1):6.1%}  {other}")


if __name__ == "__main__":
    sys.exit(main())
